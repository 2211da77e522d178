import type { Message } from '@scopesync/core';
import {
  Awareness,
  applyAwarenessUpdate,
  encodeAwarenessUpdate,
  removeAwarenessStates,
} from 'y-protocols/awareness';
import type * as Y from 'yjs';
import { DOC_ORIGINS, docOriginOf } from './doc-origin.ts';

/** What a {@link DocPresence} needs from its handle. */
export interface DocPresenceHost {
  /** Sends one awareness message about the doc. */
  send(message: Message): void;
  /** True while the doc's subscription is admitted: presence flows only then. */
  active(): boolean;
  /** Our awareness update as it goes to the relay (sealed under the doc key on encrypted docs). */
  seal(update: Uint8Array): Promise<Uint8Array>;
  /** An awareness update from the relay as ours takes it (undefined: nothing to apply). */
  open(update: Uint8Array): Promise<Uint8Array | undefined>;
  /** A new Awareness now holds the presence (first use, or a rebind to a new doc). */
  created?(awareness: Awareness): void;
  /** Sealing or sending our state failed. */
  failed(error: unknown): void;
}

/**
 * The presence of one doc: a y-protocols `Awareness` whose clientID is always the current
 * Y.Doc's. Editor cursor plugins (y-prosemirror, y-codemirror.next) tell "my caret" from the
 * others' by comparing the awareness's clientID with the doc's, so when the handle replaces
 * its doc ({@link rebind}) the presence moves to a new Awareness of the new doc: peers see
 * the old client id leave and the new one arrive with the same local state.
 */
export class DocPresence {
  readonly #host: DocPresenceHost;
  #awareness: Awareness | undefined;
  /** Our states being sealed and sent: a chain keeps them in the order they changed. */
  #sends: Promise<void> = Promise.resolve();

  constructor(host: DocPresenceHost) {
    this.#host = host;
  }

  /** The awareness, or undefined until someone used presence on this doc. */
  get current(): Awareness | undefined {
    return this.#awareness;
  }

  /**
   * The awareness, created for `doc` on first use — only then does this client announce itself
   * (at once when the subscription is active, otherwise once it is admitted).
   */
  use(doc: Y.Doc, closed: boolean): Awareness {
    if (!this.#awareness) {
      const awareness = this.#create(doc, {});
      this.#awareness = awareness;
      this.#host.created?.(awareness);
      if (closed) awareness.destroy();
      else if (this.#host.active()) this.announce();
    }
    return this.#awareness;
  }

  /** Applies an awareness update the relay sent (another client's presence). */
  async receive(update: Uint8Array): Promise<void> {
    // Before first use there is nobody to show it to; first use asks for the states.
    if (!this.#awareness) return;
    const opened = await this.#host.open(update);
    // Taken by the awareness current after opening (a reset may have rebound it meanwhile).
    if (opened && this.#awareness) applyAwarenessUpdate(this.#awareness, opened, DOC_ORIGINS.relay);
  }

  /** The relay asked for our state (a peer joined). */
  answerQuery(): void {
    if (this.#awareness) this.#send(this.#awareness);
  }

  /** (Re)joins the doc's presence on a fresh subscription: our state, then everyone else's. */
  announce(): void {
    const awareness = this.#awareness;
    if (!awareness) return;
    const local = awareness.getLocalState();
    // Peers saw our state removed (at clock + 1) when the old socket went: re-announcing at the
    // old clock would be ignored, so bump it. setLocalState sends through the update listener.
    if (local !== null) awareness.setLocalState(local);
    this.#host.send({ type: 'query-awareness' });
  }

  /** Everyone else's presence is stale once we stop hearing from the relay. */
  dropRemote(): void {
    const awareness = this.#awareness;
    if (!awareness) return;
    const others = [...awareness.getStates().keys()].filter((id) => id !== awareness.clientID);
    if (others.length > 0) removeAwarenessStates(awareness, others, DOC_ORIGINS.relay);
    // Forget their clocks too: after a reconnect the relay re-sends each state at the clock we
    // already saw, which y-protocols would otherwise ignore as old news.
    for (const id of [...awareness.meta.keys()]) if (id !== awareness.clientID) awareness.meta.delete(id);
  }

  /**
   * The handle replaced its doc: move presence to a new Awareness of `doc` (so of its
   * clientID), keeping our local state and the others' states. The old awareness is destroyed,
   * which tells the peers its client id left; whoever held it must take {@link current} anew.
   */
  rebind(doc: Y.Doc): void {
    const old = this.#awareness;
    if (!old || old.doc === doc) return;
    const fresh = this.#create(doc, old.getLocalState());
    const others = [...old.getStates().keys()].filter((id) => id !== old.clientID);
    if (others.length > 0) {
      applyAwarenessUpdate(fresh, encodeAwarenessUpdate(old, others), DOC_ORIGINS.relay);
    }
    this.#awareness = fresh;
    this.#host.created?.(fresh);
    old.destroy();
    if (fresh.getLocalState() !== null) this.#send(fresh);
  }

  /** Leaves for good: announces our departure (while still subscribed) and stops the timer. */
  destroy(): void {
    this.#awareness?.destroy();
  }

  #create(doc: Y.Doc, local: Record<string, unknown> | null): Awareness {
    const awareness = new Awareness(doc);
    // Before listening: the starting state is sent by whoever decides it should be.
    if (local === null || Object.keys(local).length > 0) awareness.setLocalState(local);
    awareness.on(
      'update',
      (changes: { added: number[]; updated: number[]; removed: number[] }, origin: unknown) => {
        if (docOriginOf(origin)?.source === 'relay') return;
        const id = awareness.clientID;
        // Only our own state is ours to publish: the relay strips entries for other clients anyway.
        if (changes.added.includes(id) || changes.updated.includes(id) || changes.removed.includes(id)) {
          this.#send(awareness);
        }
      },
    );
    return awareness;
  }

  #send(awareness: Awareness): void {
    if (!this.#host.active()) return;
    const update = encodeAwarenessUpdate(awareness, [awareness.clientID]);
    this.#sends = this.#sends
      .then(async () => {
        const sealed = await this.#host.seal(update);
        if (this.#host.active()) this.#host.send({ type: 'awareness', update: sealed });
      })
      .catch((error: unknown) => this.#host.failed(error));
  }
}
