import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IndexedDbKeyValueStore } from '@scopesync/client';
import { type KeyValueStore, MemoryKeyValueStore, SyncError } from '@scopesync/core';
import { SqliteKeyValueStore } from '@scopesync/store-sqlite';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { afterEach, describe, expect, it } from 'vitest';

/** A store under test: a fresh one, and (for durable stores) a way to reopen the same data. */
interface Fixture {
  open(): KeyValueStore;
  durable: boolean;
  teardown(): void;
}

const fixtures: Record<string, () => Fixture> = {
  MemoryKeyValueStore: () => ({
    open: () => new MemoryKeyValueStore(),
    durable: false,
    teardown: () => undefined,
  }),
  'IndexedDbKeyValueStore (fake-indexeddb)': () => {
    const indexedDB = new IDBFactory();
    return {
      open: () => new IndexedDbKeyValueStore({ name: 'kv', indexedDB, IDBKeyRange }),
      durable: true,
      teardown: () => undefined,
    };
  },
  SqliteKeyValueStore: () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopesync-kv-'));
    return {
      open: () => new SqliteKeyValueStore({ path: join(dir, 'kv.db') }),
      durable: true,
      teardown: () => rmSync(dir, { recursive: true, force: true }),
    };
  },
};

for (const [name, make] of Object.entries(fixtures)) {
  describe(name, () => {
    let fixture: Fixture;
    let stores: KeyValueStore[] = [];
    const open = (): KeyValueStore => {
      fixture ??= make();
      const store = fixture.open();
      stores.push(store);
      return store;
    };

    afterEach(async () => {
      for (const s of stores) await s.close();
      stores = [];
      fixture?.teardown();
      fixture = undefined as unknown as Fixture;
    });

    it('gets what was put, per table, and undefined for what was not', async () => {
      const kv = open();
      await kv.put('docs', 'a', { n: 1 });
      await kv.put('meta', 'a', 'other table');
      expect(await kv.get('docs', 'a')).toEqual({ n: 1 });
      expect(await kv.get('meta', 'a')).toBe('other table');
      expect(await kv.get('docs', 'missing')).toBeUndefined();
    });

    it('round-trips JSON values and bytes nested anywhere', async () => {
      const kv = open();
      const value = {
        s: 'é✓',
        n: -1.5,
        b: true,
        z: null,
        list: [1, 'x', [2]],
        bytes: new Uint8Array([0, 255, 7]),
        deep: { more: new Uint8Array(3) },
      };
      await kv.put('t', 'k', value);
      const back = await kv.get<typeof value>('t', 'k');
      expect(back).toEqual(value);
      expect(back?.bytes).toBeInstanceOf(Uint8Array);
    });

    it('copies values in and out', async () => {
      const kv = open();
      const value = { list: [1] };
      await kv.put('t', 'k', value);
      value.list.push(2);
      const out = await kv.get<{ list: number[] }>('t', 'k');
      out?.list.push(3);
      expect(await kv.get('t', 'k')).toEqual({ list: [1] });
    });

    it('replaces on put and forgets on delete; deleting a missing key is fine', async () => {
      const kv = open();
      await kv.put('t', 'k', 1);
      await kv.put('t', 'k', 2);
      expect(await kv.get('t', 'k')).toBe(2);
      await kv.delete('t', 'k');
      await kv.delete('t', 'never');
      expect(await kv.get('t', 'k')).toBeUndefined();
    });

    it('lists a table sorted by key, filtered by prefix, without other tables', async () => {
      const kv = open();
      for (const key of ['b/2', 'a', 'b/1', 'c', 'b']) await kv.put('t', key, key.toUpperCase());
      await kv.put('u', 'b/3', 'other');
      expect((await kv.list('t')).map((e) => e.key)).toEqual(['a', 'b', 'b/1', 'b/2', 'c']);
      expect(await kv.list('t', 'b/')).toEqual([
        { key: 'b/1', value: 'B/1' },
        { key: 'b/2', value: 'B/2' },
      ]);
      expect(await kv.list('empty')).toEqual([]);
    });

    it('applies a batch in order and all together', async () => {
      const kv = open();
      await kv.put('t', 'gone', 1);
      await kv.batch([
        { op: 'put', table: 't', key: 'a', value: 1 },
        { op: 'put', table: 't', key: 'a', value: 2 },
        { op: 'delete', table: 't', key: 'gone' },
        { op: 'put', table: 'u', key: 'b', value: [3] },
      ]);
      expect(await kv.get('t', 'a')).toBe(2);
      expect(await kv.get('t', 'gone')).toBeUndefined();
      expect(await kv.get('u', 'b')).toEqual([3]);
    });

    it('applies nothing of a batch with a value it cannot keep', async () => {
      const kv = open();
      await expect(
        kv.batch([
          { op: 'put', table: 't', key: 'a', value: 1 },
          { op: 'put', table: 't', key: 'b', value: undefined },
        ]),
      ).rejects.toBeInstanceOf(SyncError);
      expect(await kv.get('t', 'a')).toBeUndefined();
    });

    it('keeps what was written across close and reopen (durable stores)', async () => {
      const kv = open();
      await kv.put('t', 'k', { bytes: new Uint8Array([1, 2]) });
      if (!fixture.durable) return;
      await kv.close();
      const again = open();
      expect(await again.get('t', 'k')).toEqual({ bytes: new Uint8Array([1, 2]) });
    });

    it('rejects with Unavailable after close, and closes idempotently', async () => {
      const kv = open();
      await kv.close();
      await kv.close();
      await expect(kv.get('t', 'k')).rejects.toMatchObject({ kind: 'Unavailable' });
      await expect(kv.put('t', 'k', 1)).rejects.toMatchObject({ kind: 'Unavailable' });
    });

    it('keeps a non-extractable CryptoKey when cloneable', async () => {
      const kv = open();
      if (!kv.cloneable) return;
      const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, [
        'encrypt',
        'decrypt',
      ]);
      await kv.put('identity', 'device-key', key);
      const back = await kv.get<CryptoKey>('identity', 'device-key');
      expect(back?.extractable).toBe(false);
      const iv = new Uint8Array(12);
      const sealed = await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv },
        back as CryptoKey,
        new Uint8Array([42]),
      );
      expect(new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, sealed))).toEqual(
        new Uint8Array([42]),
      );
    });
  });
}
