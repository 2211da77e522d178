import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeRelay } from '../test-support/fake-relay.ts';
import { profile, testClients } from '../test-support/test-clients.ts';
import { KV_TABLES } from './client-store.ts';
import { DATA_MAP } from './user-data.ts';

const ALICE = 'user_00000000000000a1';
const BOB = 'user_00000000000000b0';

// A sync may wait for the fake relay to come back; bound it.
const { start, stop, closeAll } = testClients({ syncTimeoutMs: 2000 });
afterEach(closeAll);

describe('userData', () => {
  it('sets, gets, updates field by field and replaces with set', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()(), connect: false });
    expect(await a.userData.get('USER_PUBLIC', ALICE, 'profile')).toBeUndefined();
    await a.userData.set('USER_PUBLIC', ALICE, 'profile', { name: 'Alice', tags: ['a'], nested: { x: 1 } });
    expect(await a.userData.get('USER_PUBLIC', ALICE, 'profile')).toEqual({
      name: 'Alice',
      tags: ['a'],
      nested: { x: 1 },
    });
    await a.userData.update('USER_PUBLIC', ALICE, 'profile', { age: 30, tags: undefined });
    expect(await a.userData.get('USER_PUBLIC', ALICE, 'profile')).toEqual({
      name: 'Alice',
      nested: { x: 1 },
      age: 30,
    });
    await a.userData.set('USER_PUBLIC', ALICE, 'profile', { only: true });
    expect(await a.userData.get('USER_PUBLIC', ALICE, 'profile')).toEqual({ only: true });
  });

  it('keeps values in the documented representation: fields of ydoc.getMap("data")', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()() });
    await a.userData.set('PUBLIC_RW', '_', 'board', { title: 'hello', n: 2 });
    const doc = a.doc('PUBLIC_RW/_/board');
    await doc.whenAcked();
    expect(relay.doc('PUBLIC_RW/_/board').getMap(DATA_MAP).toJSON()).toEqual({ title: 'hello', n: 2 });
    await doc.release();
  });

  it('returns a copy, never the cached object', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()(), connect: false });
    await a.userData.set('USER_PUBLIC', ALICE, 'p', { list: [1] });
    const first = await a.userData.get<{ list: number[] }>('USER_PUBLIC', ALICE, 'p');
    first?.list.push(2);
    expect(await a.userData.get('USER_PUBLIC', ALICE, 'p')).toEqual({ list: [1] });
  });

  it('invalidates the cache on a remote write', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()() });
    const b = await start(relay, { apiKey: key, store: profile()() });
    await a.userData.set('USER_PUBLIC', ALICE, 'status', { text: 'one' });
    await a.doc(`USER_PUBLIC/${ALICE}/status`).whenAcked();
    expect(await b.userData.get('USER_PUBLIC', ALICE, 'status')).toEqual({ text: 'one' });
    await a.userData.update('USER_PUBLIC', ALICE, 'status', { text: 'two' });
    await vi.waitFor(async () =>
      expect(await b.userData.get('USER_PUBLIC', ALICE, 'status')).toEqual({ text: 'two' }),
    );
  });

  it('merges concurrent update()s of different fields', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()() });
    const b = await start(relay, { apiKey: key, store: profile()() });
    await a.userData.set('USER_PUBLIC', ALICE, 'card', { title: 't' });
    await a.doc(`USER_PUBLIC/${ALICE}/card`).whenAcked();
    expect(await b.userData.get('USER_PUBLIC', ALICE, 'card')).toEqual({ title: 't' });
    a.disconnect();
    b.disconnect();
    await a.userData.update('USER_PUBLIC', ALICE, 'card', { color: 'red' });
    await b.userData.update('USER_PUBLIC', ALICE, 'card', { size: 3 });
    a.connect();
    b.connect();
    const expected = { title: 't', color: 'red', size: 3 };
    await vi.waitFor(async () => {
      expect(await a.userData.get('USER_PUBLIC', ALICE, 'card')).toEqual(expected);
      expect(await b.userData.get('USER_PUBLIC', ALICE, 'card')).toEqual(expected);
    });
  });

  it('rejects flags past the scope ceiling and values that are not objects', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()(), connect: false });
    await expect(a.userData.set('USER_PRIVATE', ALICE, 'k', { a: 1 }, { read: 2 })).rejects.toMatchObject({
      kind: 'BadRequest',
    });
    await expect(a.userData.set('USER_PUBLIC', ALICE, 'k', [1] as never)).rejects.toMatchObject({
      kind: 'BadRequest',
    });
    await expect(a.userData.get('USER_PUBLIC', ALICE, '../etc')).rejects.toMatchObject({
      kind: 'BadRequest',
    });
    await expect(a.userData.set('PUBLIC_READ', '_', 'banner', { a: 1 })).rejects.toMatchObject({
      kind: 'Forbidden',
    });
    await expect(a.userData.set('USER_PUBLIC', BOB, 'k', { a: 1 })).rejects.toMatchObject({
      kind: 'Forbidden',
    });
  });

  it('sends the requested flags with the subscription that creates the object', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()(), connect: false });
    await a.userData.set('USER_PUBLIC', ALICE, 'draft', { text: 'wip' }, { read: 1 });
    a.connect();
    await vi.waitFor(() =>
      expect(
        relay.received.find(
          (f) => f.docName === `USER_PUBLIC/${ALICE}/draft` && f.message.type === 'subscribe',
        )?.message,
      ).toMatchObject({
        read: 1,
      }),
    );
  });

  it('deletes online through HTTP and locally', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()() });
    await a.userData.set('USER_PUBLIC', ALICE, 'gone', { a: 1 });
    await a.doc(`USER_PUBLIC/${ALICE}/gone`).whenAcked();
    await a.userData.delete('USER_PUBLIC', ALICE, 'gone');
    expect(relay.docs.has(`USER_PUBLIC/${ALICE}/gone`)).toBe(false);
    expect(await a.userData.get('USER_PUBLIC', ALICE, 'gone')).toBeUndefined();
    expect(await a.userData.list('USER_PUBLIC', ALICE)).toEqual([]);
  });

  it('queues a delete made offline in the persisted outbox and sends it after a restart', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const store = profile();
    const a = await start(relay, { apiKey: key, store: store() });
    await a.userData.set('USER_PUBLIC', ALICE, 'old', { a: 1 });
    await a.doc(`USER_PUBLIC/${ALICE}/old`).whenAcked();
    relay.stop();
    await a.userData.delete('USER_PUBLIC', ALICE, 'old');
    expect(await a.userData.get('USER_PUBLIC', ALICE, 'old')).toBeUndefined();
    expect(await a.userData.list('USER_PUBLIC', ALICE)).toEqual([]);
    expect(await a.store.kv.list(KV_TABLES.outbox)).toHaveLength(1);
    await stop(a);

    relay.start();
    const again = await start(relay, { apiKey: key, store: store() });
    await vi.waitFor(async () => expect(await again.store.kv.list(KV_TABLES.outbox)).toEqual([]));
    expect(relay.docs.has(`USER_PUBLIC/${ALICE}/old`)).toBe(false);
  });

  it('lists local keys merged with the relay’s', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()() });
    await a.userData.set('USER_PUBLIC', ALICE, 'remote/1', { a: 1 });
    await a.doc(`USER_PUBLIC/${ALICE}/remote/1`).whenAcked();
    const b = await start(relay, { apiKey: key, store: profile()(), connect: false });
    relay.stop();
    await b.userData.set('USER_PUBLIC', ALICE, 'local/1', { b: 1 });
    // Relay unreachable: what this device has is the answer.
    expect(await b.userData.list('USER_PUBLIC', ALICE)).toEqual(['local/1']);
    relay.start();
    expect(await b.userData.list('USER_PUBLIC', ALICE)).toEqual(['local/1', 'remote/1']);
    expect(await b.userData.list('USER_PUBLIC', ALICE, { prefix: 'remote/' })).toEqual(['remote/1']);
  });

  it('fetches a value this device has never seen from the relay', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()() });
    await a.userData.set('USER_PUBLIC', ALICE, 'far', { where: 'relay' });
    await a.doc(`USER_PUBLIC/${ALICE}/far`).whenAcked();
    const b = await start(relay, { apiKey: key, store: profile()() });
    await vi.waitFor(() => expect(b.online).toBe(true));
    expect(await b.userData.get('USER_PUBLIC', ALICE, 'far')).toEqual({ where: 'relay' });
  });
});

describe('userData.subscribe (live values)', () => {
  type Seen = { value: unknown; pending: boolean; synced: boolean; source: string };
  const recorder = (): { seen: Seen[]; listener: (v: unknown, m: Omit<Seen, 'value'>) => void } => {
    const seen: Seen[] = [];
    return { seen, listener: (value, meta) => seen.push({ value, ...meta }) };
  };

  it('shows the stored value at once, offline, then each local write with its pending flag', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()(), connect: false });
    await a.userData.set('USER_PUBLIC', ALICE, 'status', { text: 'away' });
    const { seen, listener } = recorder();
    const stop = a.userData.subscribe('USER_PUBLIC', ALICE, 'status', listener);
    await vi.waitFor(() => expect(seen).toHaveLength(1));
    expect(seen[0]).toMatchObject({ value: { text: 'away' }, pending: true, source: 'local-store' });
    await a.userData.update('USER_PUBLIC', ALICE, 'status', { text: 'here' });
    await vi.waitFor(() => expect(seen.at(-1)).toMatchObject({ value: { text: 'here' }, source: 'local' }));
    stop();
    await a.userData.update('USER_PUBLIC', ALICE, 'status', { text: 'gone' });
    expect(seen.some((s) => (s.value as { text?: string }).text === 'gone')).toBe(false);
  });

  it('shows another client’s write as it arrives from the relay, and our write turning acknowledged', async () => {
    const relay = new FakeRelay();
    const key = relay.addUser(ALICE);
    const a = await start(relay, { apiKey: key, store: profile()() });
    const b = await start(relay, { apiKey: key, store: profile()() });
    const { seen, listener } = recorder();
    const stop = b.userData.subscribe('USER_PUBLIC', ALICE, 'card', listener);
    await vi.waitFor(() => expect(seen.at(-1)).toMatchObject({ value: undefined, synced: true }));
    await a.userData.set('USER_PUBLIC', ALICE, 'card', { title: 'from a' });
    await vi.waitFor(() =>
      expect(seen.at(-1)).toMatchObject({ value: { title: 'from a' }, source: 'relay', pending: false }),
    );
    await b.userData.update('USER_PUBLIC', ALICE, 'card', { done: true });
    // First the optimistic local value with a pending write, then the same value acknowledged.
    await vi.waitFor(() =>
      expect(seen.at(-1)).toMatchObject({ value: { title: 'from a', done: true }, pending: false }),
    );
    expect(seen).toContainEqual(
      expect.objectContaining({ value: { title: 'from a', done: true }, pending: true, source: 'local' }),
    );
    stop();
  });

  it('tells onError when access is revoked, and calls back no more', async () => {
    const relay = new FakeRelay();
    const bobKey = relay.addUser(BOB);
    const aliceKey = relay.addUser(ALICE);
    const bob = await start(relay, { apiKey: bobKey, store: profile()() });
    await bob.userData.set('USER_PUBLIC', BOB, 'card', { v: 1 }, { waitForAck: true });
    const alice = await start(relay, { apiKey: aliceKey, store: profile()() });
    const values: unknown[] = [];
    const errors: { kind: string }[] = [];
    alice.userData.subscribe(
      'USER_PUBLIC',
      BOB,
      'card',
      (value) => values.push(value),
      (error) => errors.push(error),
    );
    await vi.waitFor(() => expect(values.at(-1)).toEqual({ v: 1 }));
    relay.setAccess(ALICE, `USER_PUBLIC/${BOB}/card`, 'none');
    await vi.waitFor(() => expect(errors).toEqual([expect.objectContaining({ kind: 'Forbidden' })]));
    const seen = values.length;
    await bob.userData.set('USER_PUBLIC', BOB, 'card', { v: 2 }, { waitForAck: true });
    expect(values).toHaveLength(seen);
  });

  it('refuses at once a subscription to a scope this client may not read', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()(), connect: false });
    expect(() => a.userData.subscribe('USER_PRIVATE', BOB, 'secret', () => undefined)).toThrow(
      expect.objectContaining({ kind: 'Forbidden' }),
    );
  });
});

describe('userData.set with waitForAck', () => {
  it('resolves only once the relay stored the write', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()() });
    await a.userData.set('USER_PUBLIC', ALICE, 'saved', { n: 1 }, { waitForAck: true });
    expect(relay.doc(`USER_PUBLIC/${ALICE}/saved`).getMap(DATA_MAP).toJSON()).toEqual({ n: 1 });
  });

  it('waits while the relay is down and resolves when it is back', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()() });
    await vi.waitFor(() => expect(a.online).toBe(true));
    relay.stop();
    let acked = false;
    const saving = a.userData.set('USER_PUBLIC', ALICE, 'later', { n: 2 }, { waitForAck: true }).then(() => {
      acked = true;
    });
    // Durable locally at once; not acknowledged while the relay is unreachable.
    await vi.waitFor(async () =>
      expect(await a.userData.get('USER_PUBLIC', ALICE, 'later')).toEqual({ n: 2 }),
    );
    expect(acked).toBe(false);
    relay.start();
    await saving;
    expect(relay.doc(`USER_PUBLIC/${ALICE}/later`).getMap(DATA_MAP).toJSON()).toEqual({ n: 2 });
  });

  it('rejects with the relay’s error when it refuses the write', async () => {
    const relay = new FakeRelay();
    const a = await start(relay, { apiKey: relay.addUser(ALICE), store: profile()() });
    relay.refuseNextWrite(`USER_PUBLIC/${ALICE}/bad`, 'TooLarge');
    await expect(
      a.userData.set('USER_PUBLIC', ALICE, 'bad', { n: 3 }, { waitForAck: true }),
    ).rejects.toMatchObject({ kind: 'TooLarge' });
  });
});
