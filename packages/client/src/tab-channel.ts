import { type Awareness, applyAwarenessUpdate, encodeAwarenessUpdate } from 'y-protocols/awareness';
import * as Y from 'yjs';
import type { DocHandle } from './doc-handle.ts';
import { DOC_ORIGINS, docOriginOf } from './doc-origin.ts';
import type { Unsubscribe } from './typed-events.ts';

/**
 * What one tab tells the others about one doc. `hello` carries a state vector and asks the
 * others for what it lacks (and for their presence); `update` is a Yjs update; `awareness` an
 * awareness update of the sender's own state.
 */
type TabPayload =
  | { readonly doc: string; readonly kind: 'hello'; readonly stateVector: Uint8Array }
  | { readonly doc: string; readonly kind: 'update'; readonly update: Uint8Array }
  | { readonly doc: string; readonly kind: 'awareness'; readonly update: Uint8Array };

/** A {@link TabPayload} with the sending tab's id. */
type TabMessage = TabPayload & { readonly from: string };

/** The part of `BroadcastChannel` the tab channel uses (browsers' and Node's both fit). */
interface BroadcastChannelLike {
  onmessage: ((event: { readonly data: unknown }) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}

/** One open doc as the tab channel follows it. */
interface Member {
  readonly handle: DocHandle;
  awareness: Awareness | undefined;
  /** Stops following `awareness`. */
  offAwareness: Unsubscribe;
  readonly leave: Unsubscribe;
}

/**
 * Keeps the tabs of one browser in step without the relay, as y-websocket does: every local
 * edit of an open doc and this tab's presence on it go to the other tabs of the same origin,
 * relay URL and user over a `BroadcastChannel`; a tab opening a doc asks the others for what it
 * lacks. The messages never leave the browser (BroadcastChannel is same-origin, in-memory), but
 * they are plaintext Yjs updates — also of end-to-end encrypted docs, which every tab of the
 * user decrypts anyway (docs/offline.md). A tab stores and sends what it receives like its own
 * edits, so nothing depends on the sending tab staying open; the relay merges the duplicates.
 */
export class TabChannel {
  readonly #channel: BroadcastChannelLike;
  readonly #members = new Map<string, Member>();
  /** Tells this tab's messages from the others' (Node delivers nothing to its sender, browsers neither; kept for safety). */
  readonly #id = Math.random().toString(36).slice(2);
  #closed = false;

  /** Opens the channel `name`; undefined when the runtime has no BroadcastChannel. */
  static open(name: string): TabChannel | undefined {
    const Channel = (globalThis as { BroadcastChannel?: new (name: string) => BroadcastChannelLike })
      .BroadcastChannel;
    return Channel ? new TabChannel(new Channel(name)) : undefined;
  }

  private constructor(channel: BroadcastChannelLike) {
    this.#channel = channel;
    // Node: an open channel must not keep the process alive on its own.
    (channel as { unref?: () => void }).unref?.();
    channel.onmessage = (event) => this.#receive(event.data);
  }

  /** Follows a newly opened doc until its handle closes. */
  join(handle: DocHandle): void {
    if (this.#closed || this.#members.has(handle.name)) return;
    let doc = handle.doc;
    const onUpdate = (update: Uint8Array, origin: unknown): void => {
      const source = docOriginOf(origin)?.source;
      // Only this tab's own edits: the others get the relay's from the relay, and their own already.
      if (source === undefined || source === 'reseal')
        this.#post({ doc: handle.name, kind: 'update', update });
    };
    doc.on('update', onUpdate);
    const offReset = handle.on('reset', ({ doc: fresh }) => {
      doc.off('update', onUpdate);
      doc = fresh;
      doc.on('update', onUpdate);
    });
    const offClosed = handle.on('closed', () => member.leave());
    const member: Member = {
      handle,
      awareness: undefined,
      offAwareness: () => undefined,
      leave: () => {
        member.offAwareness();
        doc.off('update', onUpdate);
        offReset();
        offClosed();
        if (this.#members.get(handle.name) === member) this.#members.delete(handle.name);
      },
    };
    this.#members.set(handle.name, member);
    handle.whenLoaded.then(
      () => this.#post({ doc: handle.name, kind: 'hello', stateVector: Y.encodeStateVector(handle.doc) }),
      () => undefined,
    );
  }

  /**
   * Shares a doc's presence with the other tabs, once the app uses `handle.awareness`. Called
   * again with a new Awareness (a handle may replace it), it follows the new one instead.
   */
  joinAwareness(handle: DocHandle, awareness: Awareness): void {
    const member = this.#members.get(handle.name);
    if (!member || member.awareness === awareness) return;
    member.offAwareness();
    member.awareness = awareness;
    const onAwareness = (
      changes: { added: number[]; updated: number[]; removed: number[] },
      origin: unknown,
    ): void => {
      if (docOriginOf(origin) !== undefined) return; // the relay's or another tab's
      const own = awareness.clientID;
      if ([...changes.added, ...changes.updated, ...changes.removed].includes(own))
        this.#postAwareness(member);
    };
    awareness.on('update', onAwareness);
    member.offAwareness = () => awareness.off('update', onAwareness);
    this.#postAwareness(member);
    // Ask for the other tabs' presence (a hello answers with it).
    this.#post({ doc: handle.name, kind: 'hello', stateVector: Y.encodeStateVector(handle.doc) });
  }

  /** Stops following every doc and closes the channel. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const member of [...this.#members.values()]) member.leave();
    this.#channel.onmessage = null;
    this.#channel.close();
  }

  #postAwareness(member: Member): void {
    const awareness = member.awareness;
    if (!awareness) return;
    const update = encodeAwarenessUpdate(awareness, [awareness.clientID]);
    this.#post({ doc: member.handle.name, kind: 'awareness', update });
  }

  #post(message: TabPayload): void {
    if (this.#closed) return;
    try {
      this.#channel.postMessage({ ...message, from: this.#id });
    } catch {
      // A closed or failing channel only costs the other tabs a shortcut: the relay still syncs.
    }
  }

  #receive(data: unknown): void {
    const message = asTabMessage(data);
    if (!message || message.from === this.#id) return;
    const member = this.#members.get(message.doc);
    if (!member || member.handle.closed) return;
    const { handle } = member;
    try {
      switch (message.kind) {
        case 'hello': {
          const missing = Y.encodeStateAsUpdate(handle.doc, message.stateVector);
          // y-protocols' "nothing": no structs, empty delete set.
          if (!(missing.length <= 2 && missing.every((b) => b === 0))) {
            this.#post({ doc: handle.name, kind: 'update', update: missing });
          }
          this.#postAwareness(member);
          return;
        }
        case 'update':
          // Stored and sent like an edit of this tab (doc-handle's update listener, DocOrigin 'tab').
          Y.applyUpdate(handle.doc, message.update, DOC_ORIGINS.tab);
          return;
        case 'awareness':
          if (member.awareness) applyAwarenessUpdate(member.awareness, message.update, DOC_ORIGINS.tab);
          return;
      }
    } catch {
      // Another tab of the same app sent something this one cannot apply (a different version):
      // ignore it; the relay remains the way the tabs converge.
    }
  }
}

function asTabMessage(data: unknown): TabMessage | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const m = data as Record<string, unknown>;
  if (typeof m.doc !== 'string' || typeof m.from !== 'string') return undefined;
  if (m.kind === 'hello' && m.stateVector instanceof Uint8Array) return m as unknown as TabMessage;
  if ((m.kind === 'update' || m.kind === 'awareness') && m.update instanceof Uint8Array)
    return m as unknown as TabMessage;
  return undefined;
}
