import { randomUUID } from 'node:crypto';
import { Level, MemoryDocStore, type ObjectRecord, type ShareRecord } from '@scopesync/core';
import { MemoryRelayStore } from '@scopesync/relay';
import { describe, expect, it } from 'vitest';
import { enc, type HttpAnswer } from './support/http-client.ts';
import { useTestRelay } from './support/start-test-relay.ts';
import {
  carries,
  EMPTY_STATE_VECTOR,
  type MuxSocket,
  update,
  useSyncSockets,
  WAIT_MS,
} from './support/sync-sockets.ts';

/*
 * A socket's first write to an object that exists, asking for no other flags, is decided
 * without the object's lock (across relays the lock is a PostgreSQL round trip per socket).
 * Nothing then orders the decision before an owner's change of access, so the relay must
 * decide the write again when access changed while it was being decided: a write checked
 * against the shares as they were must not land once the owner has taken write access away.
 */

/** A held read: who waits for it to be reached, and what releases it. */
interface HeldRead {
  readonly reached: Promise<void>;
  readonly release: () => void;
}

/** A relay store that can hold one read of an object's metadata or of a blob's shares, after reading it, until released. */
class HeldReadsRelayStore extends MemoryRelayStore {
  readonly #held = new Map<string, { reached: () => void; released: Promise<void> }>();

  /** Holds the next read of object `name`'s record. */
  holdNextObjectRead(name: string): HeldRead {
    return this.#hold(`object ${name}`);
  }

  /** Holds the next read of blob `blobId`'s shares. */
  holdNextSharesRead(blobId: string): HeldRead {
    return this.#hold(`shares ${blobId}`);
  }

  #hold(what: string): HeldRead {
    let reached!: () => void;
    let release!: () => void;
    const reachedPromise = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.#held.set(what, { reached, released });
    return { reached: reachedPromise, release };
  }

  async #read<T>(what: string, value: T): Promise<T> {
    const held = this.#held.get(what);
    if (held) {
      this.#held.delete(what);
      held.reached();
      await held.released;
    }
    return value;
  }

  override async getObject(name: string): Promise<ObjectRecord | null> {
    return this.#read(`object ${name}`, await super.getObject(name));
  }

  override async listShares(blobId: string): Promise<ShareRecord[]> {
    return this.#read(`shares ${blobId}`, await super.listShares(blobId));
  }
}

const relayStore = new HeldReadsRelayStore();
const t = useTestRelay({ stores: { relayStore, docStore: new MemoryDocStore() }, rateLimit: false });
const sockets = useSyncSockets(t);
const mux = (key: string): Promise<MuxSocket> => sockets.mux(key, { fence: true });

/** Rejects after `ms` with `what`: a step that must not wait for the held read. */
function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)),
  ]);
}

/**
 * Sends `socket`'s first write of `text` to `doc`, holds its access check at `held`, and meanwhile
 * runs `change` (an access change that must not wait for the check). Resolves with the answers
 * to both.
 */
async function firstWriteDuring(
  socket: MuxSocket,
  doc: string,
  text: string,
  held: HeldRead,
  change: () => Promise<HttpAnswer>,
): Promise<{ written: Awaited<ReturnType<MuxSocket['write']>>; changed: HttpAnswer }> {
  const written = socket.write(doc, update('title', text));
  await within(held.reached, 'the first write reaching its access check');
  const changed = await within(change(), 'the access change').finally(held.release);
  return { written: await written, changed };
}

describe('access taken away while a socket’s first write is being decided', () => {
  it('a share downgraded: the write decided against the old share does not land', async () => {
    const owner = await t.user('owner');
    const sharee = await t.user('sharee');
    const id = `b-${randomUUID()}`;
    const doc = `blob/${id}`;
    const ownerSocket = await mux(owner.key);
    expect((await ownerSocket.subscribe(doc)).access).toBe('read-write');
    expect(await ownerSocket.write(doc, update('title', 'board'))).toMatchObject({ type: 'ack' });
    const shared = await t.api('POST', `/share/${enc(id)}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_write' },
    });
    expect(shared.status).toBe(200);
    const shareeSocket = await mux(sharee.key);
    expect((await shareeSocket.subscribe(doc)).access).toBe('read-write');

    // The sharee's first write reads the shares (read_write) and is held there while the owner
    // downgrades the share; the relay has decided the sharee's subscription again when that answers.
    const { written, changed } = await firstWriteDuring(
      shareeSocket,
      doc,
      'SHAREE-EDIT',
      relayStore.holdNextSharesRead(id),
      () =>
        t.api('POST', `/share/${enc(id)}`, {
          key: owner.key,
          body: { user_id: sharee.userId, access_level: 'read_only' },
        }),
    );
    expect(changed.status).toBe(200);
    expect(written).toMatchObject({ type: 'error', kind: 'Forbidden' });
    await shareeSocket.fence();
    expect(shareeSocket.lastPermission(doc)?.access).toBe('read');
    await ownerSocket.fence();
    expect(ownerSocket.saw('SHAREE-EDIT')).toBe(false);
    // What the relay holds of the blob: the owner's value, not the sharee's.
    ownerSocket.send(doc, { type: 'sync-step1', stateVector: EMPTY_STATE_VECTOR });
    const state = await ownerSocket.waitFor(
      'the blob’s state',
      (f) => f.doc === doc && f.message.type === 'sync-step2',
    );
    expect({ board: carries(state.bytes, 'board'), edit: carries(state.bytes, 'SHAREE-EDIT') }).toEqual({
      board: true,
      edit: false,
    });
  });

  it('write 0 set by an admin: not held up by the write’s check, and the write does not land', async () => {
    const admin = await t.user('admin', Level.Admin);
    const writer = await t.user('writer');
    const key = `board-${randomUUID()}`;
    const doc = `PUBLIC_RW/_/${key}`;
    const created = await t.api('POST', `/userdata/_/PUBLIC_RW/${key}`, {
      key: admin.key,
      body: { value: { title: 'board' } },
    });
    expect(created.status).toBe(200);
    const writerSocket = await mux(writer.key);
    expect((await writerSocket.subscribe(doc)).access).toBe('read-write');

    // The writer's first write reads the object (write 1) and is held there while the admin
    // closes the object to client writes. That takes the object's lock, so it answers only
    // because the writer's check does not hold it.
    const { written, changed } = await firstWriteDuring(
      writerSocket,
      doc,
      'WRITER-EDIT',
      relayStore.holdNextObjectRead(doc),
      () =>
        t.api('POST', `/userdata/_/PUBLIC_RW/${key}`, {
          key: admin.key,
          body: { value: { title: 'final' }, write: 0 },
        }),
    );
    expect(changed.status).toBe(200);
    expect(written).toMatchObject({ type: 'error', kind: 'Forbidden' });
    const value = await t.api('GET', `/userdata/_/PUBLIC_RW/${key}`, { key: admin.key });
    expect(value.json).toMatchObject({ value: { title: 'final' }, write: 0 });
    await writerSocket.fence();
    expect(writerSocket.saw('WRITER-EDIT')).toBe(false);
  });
});

describe('a socket’s first write to an existing object', () => {
  it('refreshes its updatedAt and leaves the flags as they are', async () => {
    const owner = await t.user('owner');
    const sharee = await t.user('sharee');
    const id = `b-${randomUUID()}`;
    const doc = `blob/${id}`;
    const ownerSocket = await mux(owner.key);
    await ownerSocket.subscribe(doc);
    expect(await ownerSocket.write(doc, update('title', 'board'))).toMatchObject({ type: 'ack' });
    await t.api('POST', `/share/${enc(id)}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_write' },
    });
    const before = await relayStore.getObject(doc);
    // Past the interval in which a write refreshes nothing (TOUCH_INTERVAL_MS, one second).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const shareeSocket = await mux(sharee.key);
    await shareeSocket.subscribe(doc);
    expect(await shareeSocket.write(doc, update('note', 'sharee-edit'))).toMatchObject({ type: 'ack' });
    const after = await relayStore.getObject(doc);
    expect(after?.updatedAt).toBeGreaterThan(before?.updatedAt ?? Number.POSITIVE_INFINITY);
    expect({ owner: after?.owner, read: after?.read, write: after?.write }).toEqual({
      owner: before?.owner,
      read: before?.read,
      write: before?.write,
    });
  });
});
