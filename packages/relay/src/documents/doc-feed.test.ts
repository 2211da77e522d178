import {
  type AppendItem,
  type DocName,
  MemoryDocStore,
  parseDocName,
  type StoredEntry,
} from '@scopesync/core';
import { afterEach, describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { LocalEventBus } from '../events/local-event-bus.ts';
import type { ChangeOrigin, DocUpdated, RelayEvent } from '../events/relay-events.ts';
import { Metrics } from '../metrics.ts';
import { DocFeed, type FeedEvent } from './doc-feed.ts';
import { DocHub } from './doc-hub.ts';

const NOTES = parseDocName('PUBLIC_RW/_/notes').name;
const WRITER: ChangeOrigin = { source: 'socket', session: 1 };
const FROM_A: ChangeOrigin = { source: 'relay', relayId: 'a' };

/** One shared store whose next batch can be made to fail. */
class SharedStore extends MemoryDocStore {
  failNext = false;
  /** While set, reads of a log wait for it: a reload held open. */
  loadGate: Promise<void> | null = null;
  /** Reads of a log fail while set: the database is unreachable. */
  loadsFail = false;
  /** How often each read was made. */
  readonly reads = { head: 0, heads: 0, load: 0 };
  override async head(doc: string): Promise<number> {
    this.reads.head += 1;
    return super.head(doc);
  }
  override async heads(docs: readonly string[]): Promise<Map<string, number>> {
    this.reads.heads += 1;
    return super.heads(docs);
  }
  override async load(doc: string, sinceSeq?: number, limit?: number): Promise<StoredEntry[]> {
    this.reads.load += 1;
    if (this.loadGate) await this.loadGate;
    if (this.loadsFail) throw new Error('connection terminated');
    return super.load(doc, sinceSeq, limit);
  }
  /** While set, an append's answer waits for it, its seqs already taken: a commit in flight. */
  answerGate: Promise<void> | null = null;
  override async appendBatch(items: readonly AppendItem[]): Promise<number[]> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    const seqs = await super.appendBatch(items);
    if (this.answerGate) await this.answerGate;
    return seqs;
  }
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** A relay's documents: its bus (with what reached its sockets' path), its hub, and its feed. */
function relay(
  store: SharedStore,
  inFlightGraceMs = 20,
): {
  bus: LocalEventBus;
  hub: DocHub;
  feed: DocFeed;
  toSockets: DocUpdated[];
  forwarded: FeedEvent[];
} {
  const bus = new LocalEventBus();
  const hub = new DocHub({ store, bus, metrics: new Metrics(), log: () => undefined });
  const feed = new DocFeed({
    bus,
    target: hub,
    store,
    idleCheckMs: 0,
    inFlightGraceMs,
    log: () => undefined,
  });
  const toSockets: DocUpdated[] = [];
  const forwarded: FeedEvent[] = [];
  bus.on('doc-updated', (e) => {
    toSockets.push(e);
  });
  // What a ClusterLink would send to the other relays, with this relay as origin.
  const forward = (e: RelayEvent): void => {
    if (e.type === 'doc-updated' && (e.seq !== null || e.origin.source === 'relay')) return;
    if (e.type === 'doc-updated' || e.type === 'doc-committed') forwarded.push({ ...e, origin: FROM_A });
    if (e.type === 'doc-write-failed') forwarded.push(e);
  };
  bus.on('doc-updated', forward);
  bus.on('doc-committed', forward);
  bus.on('doc-write-failed', forward);
  closers.push(async () => {
    feed.close();
    await hub.close();
  });
  return { bus, hub, feed, toSockets, forwarded };
}

function edit(text: string): Uint8Array {
  const doc = new Y.Doc();
  doc.getText('t').insert(0, text);
  return Y.encodeStateAsUpdate(doc);
}

async function textOn(hub: DocHub): Promise<string> {
  return hub.read(NOTES, (doc) => doc.getText('t').toString());
}

/** Lets the lanes of both buses run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('DocFeed across relays', () => {
  it('gives another relay’s update to this relay’s readers before its commit, and not again after it', async () => {
    const store = new SharedStore();
    const a = relay(store);
    const b = relay(store);
    const hold = await b.hub.hold(NOTES, 'plaintext');
    const pending = await a.hub.enqueueUpdate(NOTES, edit('hello'), WRITER);
    // Only the update as applied has crossed so far: the commit has not happened yet.
    expect(a.forwarded.map((e) => e.type)).toEqual(['doc-updated']);
    for (const e of a.forwarded.splice(0)) b.feed.receive(e);
    await settle();
    expect(await textOn(b.hub)).toBe('hello');
    expect(b.toSockets).toHaveLength(1);
    expect(b.toSockets[0]?.seq).toBeNull();

    await pending.committed;
    expect(a.forwarded.map((e) => e.type)).toEqual(['doc-committed']);
    for (const e of a.forwarded.splice(0)) b.feed.receive(e);
    await settle();
    expect(b.toSockets).toHaveLength(1);
    hold.release();
  });

  it('still delivers a committed update whose early copy was lost', async () => {
    const store = new SharedStore();
    const a = relay(store);
    const b = relay(store);
    const hold = await b.hub.hold(NOTES, 'plaintext');
    await a.hub.applyUpdate(NOTES, edit('late'), WRITER);
    for (const e of a.forwarded.splice(0)) if (e.type === 'doc-committed') b.feed.receive(e);
    await settle();
    expect(await textOn(b.hub)).toBe('late');
    expect(b.toSockets.map((e) => e.seq)).toEqual([1]);
    hold.release();
  });

  it('reloads its copy from the store when the writer’s relay could not store the update', async () => {
    const store = new SharedStore();
    const a = relay(store);
    const b = relay(store);
    const hold = await b.hub.hold(NOTES, 'plaintext');
    await a.hub.applyUpdate(NOTES, edit('kept'), WRITER);
    store.failNext = true;
    const pending = await a.hub.enqueueUpdate(NOTES, edit('lost'), WRITER);
    await expect(pending.committed).rejects.toThrow();
    await settle();
    for (const e of a.forwarded.splice(0)) b.feed.receive(e);
    await settle();
    // B served the unstored update to its readers like A's own readers, then dropped it from its
    // copy: a new reader there gets only what is stored (the writer resends the rest).
    expect(b.toSockets.some((e) => e.seq === null)).toBe(true);
    const text = await textOn(b.hub);
    expect(text).toContain('kept');
    expect(text).not.toContain('lost');
    hold.release();
  });

  it('sends its readers what another relay committed while its copy was being reloaded (chaos issue #16)', async () => {
    const store = new SharedStore();
    const a = relay(store);
    const b = relay(store);
    // A stock y-websocket reader on A: it only ever gets what A pushes, it never asks again.
    const hold = await a.hub.hold(NOTES, 'plaintext');
    await b.hub.applyUpdate(NOTES, edit('kept '), WRITER);
    for (const e of b.forwarded.splice(0)) a.feed.receive(e);
    await settle();
    // A's commit fails: A reloads its copy, and that reload is slow (the database is struggling).
    let openGate = (): void => undefined;
    store.loadGate = new Promise((resolve) => {
      openGate = resolve;
    });
    store.failNext = true;
    const failed = await a.hub.enqueueUpdate(NOTES, edit('lost '), WRITER);
    await expect(failed.committed).rejects.toThrow();
    await settle();
    // Meanwhile B stores an edit, and A receives it while its copy is not there to apply it to.
    store.loadGate = null;
    await b.hub.applyUpdate(NOTES, edit('from B'), WRITER);
    for (const e of b.forwarded.splice(0)) if (e.type !== 'doc-write-failed') a.feed.receive(e);
    await settle();
    openGate();
    await a.hub.flush();
    await settle();
    await a.feed.catchUpAll();
    await settle();
    // A's copy has it from the store, and so must A's reader.
    expect(await textOn(a.hub)).toContain('from B');
    const reader = new Y.Doc();
    for (const e of a.toSockets) Y.applyUpdate(reader, e.update);
    expect(reader.getText('t').toString()).toContain('from B');
    hold.release();
  });

  it('reloads a held copy whose reload failed, and sends its readers what it missed meanwhile', async () => {
    const store = new SharedStore();
    const a = relay(store);
    const b = relay(store);
    const hold = await a.hub.hold(NOTES, 'plaintext');
    // A's commit fails and so does the reload after it: the database is down for A.
    store.loadsFail = true;
    store.failNext = true;
    const failed = await a.hub.enqueueUpdate(NOTES, edit('lost '), WRITER);
    await expect(failed.committed).rejects.toThrow();
    await settle();
    await a.hub.flush();
    store.loadsFail = false;
    // B stores an edit; A gets it while it has no copy to follow. Nobody writes on A afterwards.
    await b.hub.applyUpdate(NOTES, edit('from B'), WRITER);
    for (const e of b.forwarded.splice(0)) if (e.type !== 'doc-write-failed') a.feed.receive(e);
    await settle();
    // The idle check (every 5 s in a relay) must bring A's reader the edit.
    await a.feed.catchUpAll();
    await settle();
    const reader = new Y.Doc();
    for (const e of a.toSockets) Y.applyUpdate(reader, e.update);
    expect(reader.getText('t').toString()).toContain('from B');
    hold.release();
  });
  it('sends its readers an update that arrives before one it depends on (chaos finding 16)', async () => {
    const store = new SharedStore();
    const b = relay(store);
    const hold = await b.hub.hold(NOTES, 'plaintext');
    // A writer typed "hello", then " world" after it: the second update depends on the first.
    const writer = new Y.Doc();
    const updates: Uint8Array[] = [];
    writer.on('update', (u: Uint8Array) => updates.push(u));
    writer.getText('t').insert(0, 'hello');
    writer.getText('t').insert(5, ' world');
    const [hello, world] = updates as [Uint8Array, Uint8Array];
    // They reach B from two relays, the dependent one first: B's copy keeps it pending.
    b.feed.receive({ type: 'doc-updated', name: NOTES, update: world, seq: null, origin: FROM_A });
    await settle();
    b.feed.receive({ type: 'doc-updated', name: NOTES, update: hello, seq: null, origin: FROM_A });
    await settle();
    expect(await textOn(b.hub)).toBe('hello world');
    // A stock y-websocket reader on B only ever gets what B pushes: it must end with both.
    const reader = new Y.Doc();
    for (const e of b.toSockets) Y.applyUpdate(reader, e.update);
    expect(reader.getText('t').toString()).toBe('hello world');
    hold.release();
  });

  it('sends its readers a stored update that precedes, in the log, the one it depends on (chaos finding 16)', async () => {
    const store = new SharedStore();
    const b = relay(store);
    const hold = await b.hub.hold(NOTES, 'plaintext');
    const writer = new Y.Doc();
    const updates: Uint8Array[] = [];
    writer.on('update', (u: Uint8Array) => updates.push(u));
    writer.getText('t').insert(0, 'hello');
    writer.getText('t').insert(5, ' world');
    const [hello, world] = updates as [Uint8Array, Uint8Array];
    // The first update's commit failed and its writer resent it later: the log has them reversed.
    await store.append(NOTES, world);
    await b.feed.catchUpAll();
    await settle();
    await store.append(NOTES, hello);
    await b.feed.catchUpAll();
    await settle();
    expect(await textOn(b.hub)).toBe('hello world');
    const reader = new Y.Doc();
    for (const e of b.toSockets) Y.applyUpdate(reader, e.update);
    expect(reader.getText('t').toString()).toBe('hello world');
    hold.release();
  });

  it('takes another relay’s commit past its own commit in flight without reading the store', async () => {
    const store = new SharedStore();
    const a = relay(store);
    const b = relay(store);
    const hold = await b.hub.hold(NOTES, 'plaintext');
    // B's own edit takes seq 1, but PostgreSQL's answer has not reached B yet.
    let answer = (): void => undefined;
    store.answerGate = new Promise<void>((resolve) => {
      answer = resolve;
    });
    const own = await b.hub.enqueueUpdate(NOTES, edit('mine '), WRITER);
    await settle();
    store.answerGate = null;
    // A's edit takes seq 2, and its commit reaches B first.
    await a.hub.applyUpdate(NOTES, edit('theirs '), WRITER);
    const before = { ...store.reads };
    for (const e of a.forwarded.splice(0)) if (e.type === 'doc-committed') b.feed.receive(e);
    await settle();
    expect(b.toSockets.map((e) => e.seq)).toContain(2);
    answer();
    await own.committed;
    // Past the grace, the gap is gone: B's own answer filled it, and nothing was read.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(store.reads.load - before.load).toBe(0);
    expect(store.reads.head - before.head).toBe(0);
    const text = await textOn(b.hub);
    expect(text).toContain('mine');
    expect(text).toContain('theirs');
    hold.release();
  });

  it('reads the store for a gap that stays past the grace (a lost message)', async () => {
    const store = new SharedStore();
    const a = relay(store);
    const b = relay(store);
    const hold = await b.hub.hold(NOTES, 'plaintext');
    await a.hub.applyUpdate(NOTES, edit('lost '), WRITER);
    a.forwarded.splice(0);
    await a.hub.applyUpdate(NOTES, edit('kept '), WRITER);
    for (const e of a.forwarded.splice(0)) if (e.type === 'doc-committed') b.feed.receive(e);
    await settle();
    expect(await textOn(b.hub)).not.toContain('lost');
    await new Promise((resolve) => setTimeout(resolve, 150));
    await settle();
    const text = await textOn(b.hub);
    expect(text).toContain('lost');
    expect(text).toContain('kept');
    hold.release();
  });

  it('leaves alone, on its idle check, a document whose commit arrives within the grace', async () => {
    const store = new SharedStore();
    const a = relay(store);
    const b = relay(store, 200);
    const hold = await b.hub.hold(NOTES, 'plaintext');
    // A commits an edit; its messages are still on their way to B when B's idle check reads the heads.
    await a.hub.applyUpdate(NOTES, edit('in flight'), WRITER);
    const before = { ...store.reads };
    const check = b.feed.catchUpAll();
    await new Promise((resolve) => setTimeout(resolve, 20));
    for (const e of a.forwarded.splice(0)) b.feed.receive(e);
    await check;
    await settle();
    expect(await textOn(b.hub)).toBe('in flight');
    expect(b.toSockets).toHaveLength(1);
    // The heads were read; the log was not.
    expect(store.reads.heads - before.heads).toBe(1);
    expect(store.reads.load - before.load).toBe(0);
    hold.release();
  });

  for (const heads of ['one read of all heads', 'a head per document'] as const) {
    it(`brings its readers a commit whose messages were lost, on its idle check (${heads})`, async () => {
      const store = new SharedStore();
      if (heads === 'a head per document') Object.defineProperty(store, 'heads', { value: undefined });
      const a = relay(store);
      const b = relay(store);
      const names = Array.from({ length: 20 }, (_, i) => parseDocName(`PUBLIC_RW/_/notes-${i}`).name);
      const holds = await Promise.all(names.map((name) => b.hub.hold(name, 'plaintext')));
      // A stores an edit of one of them; every message about it to B is lost.
      await a.hub.applyUpdate(names[7] as DocName, edit('missed'), WRITER);
      a.forwarded.splice(0);
      const before = { ...store.reads };
      await b.feed.catchUpAll();
      await settle();
      const reader = new Y.Doc();
      for (const e of b.toSockets) Y.applyUpdate(reader, e.update);
      expect(reader.getText('t').toString()).toBe('missed');
      expect(b.toSockets.map((e) => e.name)).toEqual([names[7]]);
      // Only the document behind had its log read; the others cost one shared read, or one each.
      expect(store.reads.load - before.load).toBe(1);
      if (heads === 'one read of all heads') {
        expect(store.reads.heads - before.heads).toBe(1);
        expect(store.reads.head - before.head).toBe(1);
      } else {
        expect(store.reads.head - before.head).toBe(names.length);
      }
      for (const hold of holds) hold.release();
    });
  }
});
