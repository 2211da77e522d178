import type { DocAccess, SyncError } from '@scopesync/core';
import type { Awareness } from 'y-protocols/awareness';
import type * as Y from 'yjs';
import type { ConnectionStatus } from './connection.ts';
import type { DocHandle } from './doc-handle.ts';
import { Emitter, type Unsubscribe } from './typed-events.ts';

/** The socket's state in y-websocket's words. */
export type ProviderStatus = 'connecting' | 'connected' | 'disconnected';

/**
 * The events of a {@link DocProvider}. `status`, `sync` and `synced` carry what y-websocket's
 * `WebsocketProvider` passes, so code written for it listens unchanged.
 */
export interface DocProviderEvents {
  /** The socket's state changed. */
  status: { readonly status: ProviderStatus };
  /** The doc caught up with the relay (true) or stopped hearing from it (false). */
  sync: boolean;
  /** The same as `sync` (y-websocket emits both). */
  synced: boolean;
  /**
   * The handle rebuilt its doc after a refused edit: {@link DocProvider.doc} and
   * {@link DocProvider.awareness} are new. Bindings made with {@link DocProvider.bind} follow by
   * themselves; anything else must bind to these.
   */
  reset: { readonly doc: Y.Doc; readonly awareness: Awareness };
  /** The relay reported this client's access (e.g. `read`: show the editor read-only). */
  permission: { readonly access: DocAccess; readonly readOnly: boolean };
  /** The number of local edits the relay has not acknowledged yet changed. */
  unsyncedChanges: number;
  /** A refused edit, a refused subscription, a failed local write. */
  error: SyncError;
  /** The doc stopped syncing for good (destroyed, revoked, the client closed). */
  closed: { readonly reason: string };
}

/** The part of a client a provider watches: the socket's state (a `SyncClient` is one). */
export interface ProviderConnection {
  readonly status: ConnectionStatus;
  on(event: 'status', listener: (status: ConnectionStatus) => void): Unsubscribe;
}

/** What a {@link DocProvider.bind} callback gets: the doc and awareness to bind an editor to. */
export interface ProviderBinding {
  readonly doc: Y.Doc;
  readonly awareness: Awareness;
  /** True when this client may only read the doc (bind the editor read-only). */
  readonly readOnly: boolean;
}

/**
 * A document in the shape editor bindings expect of a provider (y-websocket's
 * `WebsocketProvider`, Hocuspocus's provider): `doc`, `awareness`, `synced`, and `status` /
 * `sync` / `synced` events — so y-prosemirror, TipTap's Collaboration + CollaborationCaret and
 * y-codemirror.next take it as it is. Get one with `client.provider(name)`.
 *
 * Unlike a y-websocket provider, its doc can be replaced: when the relay refuses an edit for
 * good the handle rebuilds the doc from confirmed state, and the awareness moves to the new
 * doc's clientID (so cursor plugins keep telling your caret from the others'). Bind editors with
 * {@link bind} to have them rebuilt on that `reset`, or listen to `reset` yourself.
 */
export class DocProvider {
  /** The underlying handle (transact, whenAcked, access …). */
  readonly handle: DocHandle;
  readonly #events = new Emitter<DocProviderEvents>();
  readonly #stops: Unsubscribe[] = [];
  #status: ProviderStatus;
  /** What the last `sync` event said, so each change is told once. */
  #synced: boolean;
  #destroyed: Promise<void> | undefined;

  /** Wraps `handle` (taking over the caller's reference: {@link destroy} releases it). */
  constructor(handle: DocHandle, connection: ProviderConnection) {
    this.handle = handle;
    this.#status = providerStatus(connection.status);
    this.#synced = handle.synced;
    // Presence is part of what a provider is: announce ourselves from the start.
    void handle.awareness;
    this.#stops.push(
      connection.on('status', (status) => this.#onStatus(providerStatus(status))),
      handle.on('synced', () => this.#setSynced(true)),
      handle.on('permission', ({ access }) => {
        if (access !== 'read' && access !== 'read-write') this.#setSynced(false);
        this.#events.emit('permission', { access, readOnly: this.readOnly });
      }),
      handle.on('reset', ({ doc }) => this.#events.emit('reset', { doc, awareness: handle.awareness })),
      handle.on('pending', (count) => this.#events.emit('unsyncedChanges', count)),
      handle.on('error', (error) => this.#events.emit('error', error)),
      handle.on('closed', ({ reason }) => {
        this.#setSynced(false);
        this.#events.emit('closed', { reason });
      }),
    );
  }

  /** The Y.Doc (replaced on `reset`). */
  get doc(): Y.Doc {
    return this.handle.doc;
  }

  /** Presence on the doc; its clientID is always {@link doc}'s (replaced on `reset`). */
  get awareness(): Awareness {
    return this.handle.awareness;
  }

  /** The document's name (y-websocket's `roomname`). */
  get roomname(): string {
    return this.handle.name;
  }

  /** True while the doc is caught up with the relay (false offline). */
  get synced(): boolean {
    return this.handle.synced;
  }

  /** The same as {@link synced} (Hocuspocus's name). */
  get isSynced(): boolean {
    return this.handle.synced;
  }

  /** The socket's state. */
  get status(): ProviderStatus {
    return this.#status;
  }

  /** True while the socket is open (y-websocket's `wsconnected`). */
  get wsconnected(): boolean {
    return this.#status === 'connected';
  }

  /** True when this client may only read the doc, as the relay last said (or as `decide()` says offline). */
  get readOnly(): boolean {
    const access = this.handle.access;
    if (access === 'read' || access === 'none') return true;
    try {
      this.handle.assertWritable();
      return false;
    } catch {
      return true;
    }
  }

  /** Local edits not yet acknowledged by the relay (Hocuspocus's `unsyncedChanges`). */
  get unsyncedChanges(): number {
    return this.handle.pending;
  }

  /** True while some local edits are not acknowledged yet. */
  get hasUnsyncedChanges(): boolean {
    return this.handle.pending > 0;
  }

  /** Listens to one of the {@link DocProviderEvents}; returns the function that stops listening. */
  on<K extends keyof DocProviderEvents>(
    event: K,
    listener: (value: DocProviderEvents[K]) => void,
  ): Unsubscribe {
    return this.#events.on(event, listener);
  }

  /** Stops a listener added with {@link on}. */
  off<K extends keyof DocProviderEvents>(event: K, listener: (value: DocProviderEvents[K]) => void): void {
    this.#events.off(event, listener);
  }

  /** Listens to the next `event` only. */
  once<K extends keyof DocProviderEvents>(
    event: K,
    listener: (value: DocProviderEvents[K]) => void,
  ): Unsubscribe {
    const stop = this.#events.on(event, (value) => {
      stop();
      listener(value);
    });
    return stop;
  }

  /**
   * Binds an editor: `create` runs now with the doc and awareness (it returns the function that
   * tears the editor binding down), and again with the new ones after every `reset`, once the
   * previous binding was torn down. Returns the function that tears the current one down and
   * stops following resets.
   */
  bind(create: (binding: ProviderBinding) => () => void): Unsubscribe {
    let teardown = create(this.#binding());
    const stopReset = this.on('reset', () => {
      teardown();
      teardown = create(this.#binding());
    });
    let unbound = false;
    return () => {
      if (unbound) return;
      unbound = true;
      stopReset();
      teardown();
    };
  }

  /**
   * Stops listening and releases the handle (the doc stays in the local store; edits not yet
   * acknowledged keep syncing in the background). Idempotent.
   */
  destroy(): Promise<void> {
    this.#destroyed ??= (async () => {
      for (const stop of this.#stops.splice(0)) stop();
      this.#events.clear();
      await this.handle.release();
    })();
    return this.#destroyed;
  }

  #binding(): ProviderBinding {
    return { doc: this.handle.doc, awareness: this.handle.awareness, readOnly: this.readOnly };
  }

  #onStatus(status: ProviderStatus): void {
    if (status === this.#status) return;
    this.#status = status;
    if (status !== 'connected') this.#setSynced(false);
    this.#events.emit('status', { status });
  }

  #setSynced(synced: boolean): void {
    if (synced === this.#synced) return;
    this.#synced = synced;
    this.#events.emit('sync', synced);
    this.#events.emit('synced', synced);
  }
}

function providerStatus(status: ConnectionStatus): ProviderStatus {
  switch (status) {
    case 'online':
      return 'connected';
    case 'connecting':
      return 'connecting';
    default:
      return 'disconnected';
  }
}
