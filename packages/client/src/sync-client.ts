import {
  type Address,
  type Caller,
  decide,
  decodeMuxFrame,
  encodeMuxFrame,
  isEncryptedScope,
  type Level,
  type Message,
  namespaceOwner,
  parseDocName,
  SyncError,
} from '@scopesync/core';
import { type AuditPage, type AuditQuery, readAudit } from './audit.ts';
import type { BackoffOptions } from './backoff.ts';
import { Blobs } from './blobs.ts';
import type { ClientStore } from './client-store.ts';
import {
  Connection,
  type ConnectionStatus,
  type LivenessOptions,
  type WebSocketClass,
} from './connection.ts';
import { DeviceRegistration } from './device-registration.ts';
import type { DocCipher, DocCipherProvider } from './doc-cipher.ts';
import type { DocFlags } from './doc-flags.ts';
import { DocHandle } from './doc-handle.ts';
import { DocProvider } from './doc-provider.ts';
import type { Encryption } from './encryption.ts';
import type { HttpApi } from './http-api.ts';
import { callerOf, type Identity } from './identity.ts';
import { LocalDocLog, type PayloadCodec, PLAINTEXT_CODEC } from './local-doc-log.ts';
import { TabChannel } from './tab-channel.ts';
import type { TokenSource } from './token-source.ts';
import type { FollowFailedEvent, KeyChangedEvent, TamperEvent, Trust } from './trust.ts';
import { Emitter, type Unsubscribe } from './typed-events.ts';
import { sendUnsentEdits } from './unsent-edits.ts';
import { UserData } from './user-data.ts';

/** Options of {@link SyncClient.doc}. */
export interface DocOptions extends DocFlags {
  /** Sync a blob doc end-to-end encrypted (USER_PRIVATE docs always are). */
  readonly encrypted?: boolean | undefined;
}

/** The events of a {@link SyncClient}. */
export interface SyncClientEvents {
  /** The socket's state changed. */
  status: ConnectionStatus;
  /** The relay refused the API key: the client stopped reconnecting and works offline only. */
  'auth-error': SyncError;
  /** A problem not tied to one doc (a malformed frame, a queued HTTP operation that failed). */
  error: SyncError;
  /** The relay confirmed (or changed) who this client is. */
  identity: { readonly userId: string | undefined; readonly level: Level };
  /**
   * A user's public keys differ from the ones this client pinned: operations needing them fail
   * with KeyChanged until `client.trust.accept(userId)` (see {@link Trust}).
   */
  'key-changed': KeyChangedEvent;
  /** The relay was caught altering an encrypted document's history or membership. */
  tamper: TamperEvent;
  /** A member's identity rotation could not be followed on a blob this user owns; tried again later. */
  'follow-failed': FollowFailedEvent;
}

/** What {@link SyncClient}'s constructor gets from {@link createClient}. */
export interface SyncClientInit {
  readonly url: string;
  readonly store: ClientStore;
  readonly http: HttpApi;
  readonly identity: Identity;
  /** Registers a provisional device (POST /keys); see {@link Identity.provisional}. */
  readonly register: () => Promise<Identity>;
  /** Asks the relay who `apiKey` is (a key given while the relay was unreachable); undefined while it still is. */
  readonly confirm: (apiKey: string) => Promise<Identity | undefined>;
  /** Makes HTTP requests and the encryption use a new identity (the device was registered). */
  readonly useIdentity: (identity: Identity) => void;
  readonly encryption: Encryption;
  readonly trust: Trust;
  readonly cipherFor: DocCipherProvider | undefined;
  /** The app's token, when the client signs in with one instead of an API key. */
  readonly tokens?: TokenSource | undefined;
  readonly WebSocket: WebSocketClass;
  readonly backoff: Partial<BackoffOptions> | undefined;
  readonly liveness?: Partial<LivenessOptions> | undefined;
  readonly random: (() => number) | undefined;
  readonly compactAfter: number;
  readonly cacheSize: number;
  readonly syncTimeoutMs: number;
  readonly maxSendBytes: number;
  readonly tabSync: boolean;
}

/**
 * A scopesync client: local-first Yjs documents in a local store, synced with the relay over
 * one multiplexed WebSocket, plus the userdata, blob and share APIs. Create it with
 * {@link createClient}.
 */
export class SyncClient {
  /** Scoped JSON values on top of docs (`get/set/update/delete/list`). */
  readonly userData: UserData;
  /** Collaborative and raw blobs, and their shares. */
  readonly blobs: Blobs;
  /**
   * End-to-end encryption: this user's identity (root seed, recovery phrase, public keys) and
   * the keys of USER_PRIVATE docs and encrypted blobs. Used automatically unless `cipherFor`
   * was given.
   */
  /**
   * Whom this client trusts for shared encrypted blobs: pinned keys of other users, safety
   * numbers to compare them, `accept()` after a key change (see {@link Trust}).
   */
  readonly trust: Trust;
  readonly encryption: Encryption;
  /** The local store. Its kv table `keys` holds the built-in encryption's records (`root-seed`, `registration`, `doc:<name>`); a custom DocCipher may add its own. */
  readonly store: ClientStore;
  /** The relay's base URL. */
  readonly url: string;
  readonly #http: HttpApi;
  /** Replaced once, when a provisional device is registered (the socket then carries its key). */
  #connection: Connection;
  /** The other tabs of this browser (undefined when tab sync is off or unavailable). */
  readonly #tabs: TabChannel | undefined;
  /** Set while the identity is provisional: registers the device in the background. */
  #registration: DeviceRegistration | undefined;
  readonly #events = new Emitter<SyncClientEvents>();
  readonly #handles = new Map<string, DocHandle>();
  readonly #cipherFor: DocCipherProvider | undefined;
  readonly #ciphers = new Map<string, Promise<DocCipher>>();
  readonly #init: SyncClientInit;
  #identity: Identity;
  #ref = 0;
  /** Whether the app wants the client online (connect() and not disconnect()). */
  #wantOnline = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  /** @internal Use {@link createClient}. */
  constructor(init: SyncClientInit) {
    this.#init = init;
    this.url = init.url;
    this.store = init.store;
    this.#http = init.http;
    this.#identity = init.identity;
    this.#cipherFor = init.cipherFor;
    this.encryption = init.encryption;
    this.encryption.useDocs((name) => this.doc(name, { encrypted: true }));
    this.trust = init.trust;
    this.trust.on('key-changed', (event) => this.#events.emit('key-changed', event));
    this.trust.on('tamper', (event) => this.#events.emit('tamper', event));
    this.trust.on('follow-failed', (event) => this.#events.emit('follow-failed', event));
    this.#connection = this.#connect(init.identity.apiKey);
    // Per relay and user: tabs of someone else who signs in on this origin are not ours.
    this.#tabs = init.tabSync
      ? TabChannel.open(`scopesync:${init.url}:${init.identity.userId ?? 'guest'}`)
      : undefined;
    if (init.identity.provisional) {
      this.#registration = new DeviceRegistration({
        register: init.register,
        registered: (identity) => this.#onRegistered(identity),
        failed: (error) => this.#events.emit('auth-error', error),
        backoff: init.backoff,
        random: init.random,
      });
    }
    this.userData = new UserData({
      client: this,
      http: init.http,
      kv: init.store.kv,
      docs: init.store.docs,
      cacheSize: init.cacheSize,
      syncTimeoutMs: init.syncTimeoutMs,
      caller: (address) => this.#caller(address),
      isOnline: () => this.#connection.isOpen,
      isConnecting: () => this.#connection.status === 'connecting',
      emitError: (error) => this.#events.emit('error', error),
    });
    this.blobs = new Blobs({
      client: this,
      http: init.http,
      cipher: (name) => this.cipherOf(name),
      builtIn: () => (this.#cipherFor === undefined ? this.encryption : undefined),
    });
  }

  /**
   * False while this device works under a provisional identity (its first start could not reach
   * the relay): `userId` is already final, and the device registers in the background once the
   * relay is reachable ('identity' event). docs/offline.md.
   */
  get registered(): boolean {
    return this.#identity.provisional !== true;
  }

  /** This client's user id; undefined for a guest (or before the relay ever confirmed the key). */
  get userId(): string | undefined {
    return this.#identity.userId;
  }

  /** This client's permission level (Guest 0, User 1, Moderator 5, Admin 10). */
  get level(): Level {
    return this.#identity.level;
  }

  /** The socket's state. */
  get status(): ConnectionStatus {
    return this.#connection.status;
  }

  /** True while the socket to the relay is open. */
  get online(): boolean {
    return this.#connection.isOpen;
  }

  /** This client's public user id (the seed's `get_user_id()`); undefined for a guest. */
  getUserId(): string | undefined {
    return this.#identity.userId;
  }

  /** Listens to one of the {@link SyncClientEvents}; returns the function that stops listening. */
  on<K extends keyof SyncClientEvents>(
    event: K,
    listener: (value: SyncClientEvents[K]) => void,
  ): Unsubscribe {
    return this.#events.on(event, listener);
  }

  /**
   * Opens a document by name (`<SCOPE>/<namespace>/<key>`, `blob/<id>`) or address. Returns
   * the open handle when there is one (each call takes a reference: balance it with
   * `release()`). Throws at once for a doc this client may not read (Forbidden), a name
   * outside the grammar (BadRequest), and an encrypted doc without a cipher configured.
   */
  doc(name: string | Address, options: DocOptions = {}): DocHandle {
    if (this.#closed) throw new SyncError('Unavailable', 'the client is closed');
    const address = typeof name === 'string' ? parseDocName(name) : name;
    const existing = this.#handles.get(address.name);
    if (existing) {
      existing.retain(options);
      return existing;
    }
    const readable = decide({
      caller: this.#caller(address),
      action: 'read',
      address,
      // The best case of an object we know nothing about yet: the relay has the last word.
      object: address.kind === 'blob' ? undefined : { owner: namespaceOwner(address), read: 2, write: 1 },
    });
    if (!readable.allowed && address.kind === 'doc') {
      throw new SyncError('Forbidden', `cannot read ${address.name}: ${readable.reason}`);
    }
    const encrypted = address.kind === 'doc' ? isEncryptedScope(address.scope) : options.encrypted === true;
    let codec: PayloadCodec = PLAINTEXT_CODEC;
    const docName = address.name;
    const cipher = (): Promise<DocCipher> => this.cipherOf(docName);
    if (encrypted) {
      codec = {
        toUpdate: async (payload) => (await cipher()).open(payload),
        // Stored, never sent as such: the channel seals what it sends again (encrypted-channel.ts).
        fromUpdate: async (update) => {
          const c = await cipher();
          return c.sealLocal ? c.sealLocal(update) : c.seal(update);
        },
        snapshot: async (state) => (await cipher()).sealSnapshot(state),
      };
      // Fail at once, not at the first write: no cipher means no way to keep this doc.
      this.#requireCipher(docName);
    }
    const builtIn = encrypted && this.#cipherFor === undefined;
    const log = new LocalDocLog(
      this.store.docs,
      this.store.kv,
      address.name,
      codec,
      this.#init.compactAfter,
      encrypted,
    );
    const handle: DocHandle = new DocHandle(
      {
        name: address.name,
        address,
        encrypted,
        log,
        caller: () => this.#caller(address),
        send: (message) => this.#send(address.name, message),
        nextRef: () => ++this.#ref,
        isOnline: () => this.#connection.isOpen,
        open: async (envelope) => {
          const c = await cipher();
          return c.openFromRelay ? c.openFromRelay(envelope) : c.open(envelope);
        },
        openLocal: codec.toUpdate,
        sealSnapshot: codec.snapshot,
        // Next in this device's stream: what the channel sends (the outbox keeps `fromUpdate`'s).
        sealUpdate: async (update) => (encrypted ? (await cipher()).seal(update) : update),
        prepareSend: async () => {
          if (builtIn) await this.encryption.prepareSend(docName);
        },
        afterAck: async () => {
          if (builtIn) await this.encryption.afterAck(docName);
        },
        refreshKeys: async () => {
          if (builtIn) await (await this.encryption.docKeys(docName)).refreshKeys();
        },
        afterSynced: async () => {
          if (builtIn) await this.encryption.afterSynced(docName);
        },
        onClosed: () => {
          if (this.#handles.get(address.name) === handle) this.#handles.delete(address.name);
        },
        onAwareness: (awareness) => this.#tabs?.joinAwareness(handle, awareness),
        compactAfter: this.#init.compactAfter,
        maxSendBytes: this.#init.maxSendBytes,
      },
      { read: options.read, write: options.write },
    );
    this.#handles.set(address.name, handle);
    this.#tabs?.join(handle);
    if (this.#connection.isOpen) handle.attach();
    return handle;
  }

  /**
   * Opens a document as a provider for editor bindings (y-prosemirror, TipTap, y-codemirror.next):
   * `doc`, `awareness`, `synced` and y-websocket's events. Takes a reference like {@link doc};
   * `provider.destroy()` gives it back.
   */
  provider(name: string | Address, options: DocOptions = {}): DocProvider {
    return new DocProvider(this.doc(name, options), this);
  }

  /** Goes (back) online: connects and keeps reconnecting with backoff. */
  connect(): void {
    if (this.#closed) throw new SyncError('Unavailable', 'the client is closed');
    this.#wantOnline = true;
    // A provisional device has no key yet: it registers first, then connects (#onRegistered).
    if (this.#registration) this.#registration.start();
    else this.#connection.start();
  }

  /** Goes offline: closes the socket and stops reconnecting. Everything keeps working locally. */
  disconnect(): void {
    this.#wantOnline = false;
    this.#registration?.stop();
    this.#connection.stop();
  }

  /** The socket to the relay, carrying `key`, wired to this client's handles. Not started. */
  #connect(key: string | undefined): Connection {
    const wsBase = this.#init.url.replace(/^http/, 'ws');
    const tokens = this.#init.tokens;
    const connection = new Connection({
      // The credential rides in the subprotocol, never in the URL (proxy logs).
      url: `${wsBase}/sync`,
      credential: tokens ? () => tokens.current() : () => key,
      ...(tokens ? { refreshCredential: () => tokens.refresh() } : {}),
      WebSocket: this.#init.WebSocket,
      ...(this.#init.backoff === undefined ? {} : { backoff: this.#init.backoff }),
      ...(this.#init.random === undefined ? {} : { random: this.#init.random }),
      liveness: this.#init.liveness,
      checkAuth: () => this.#checkAuth(),
    });
    connection.on('status', (status) => this.#events.emit('status', status));
    connection.on('auth-error', (error) => this.#events.emit('auth-error', error));
    connection.on('open', () => void this.#onOpen());
    connection.on('close', () => {
      for (const handle of this.#handles.values()) handle.detach();
    });
    connection.on('message', (frame) => this.#onFrame(frame));
    return connection;
  }

  /** The relay registered this provisional device: use its key from now on and go online. */
  #onRegistered(identity: Identity): void {
    this.#registration = undefined;
    const before = this.#identity.userId;
    this.#identity = identity;
    this.#init.useIdentity(identity);
    if (this.#closed) return;
    if (identity.userId !== before) {
      // A relay that does not name users by their signing key: what this device wrote under
      // the provisional id is not this user's on that relay. It stays on the device.
      this.#events.emit(
        'error',
        new SyncError(
          'Conflict',
          `the relay registered this device as ${identity.userId}, not ${before}: documents written under ${before} while offline stay on this device only`,
        ),
      );
    }
    this.#events.emit('identity', { userId: identity.userId, level: identity.level });
    // The keyless socket was never started (connect() registers first): nothing to close.
    this.#connection = this.#connect(identity.apiKey);
    if (this.#wantOnline) this.#connection.start();
  }

  /**
   * Closes every handle (their local writes are durable first), the socket and the store.
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      await this.userData.close();
      await Promise.allSettled([...this.#handles.values()].map((h) => h.shutdown()));
      this.#registration?.stop();
      this.#tabs?.close();
      this.#connection.close();
      await Promise.allSettled([this.store.docs.close(), this.store.kv.close()]);
      this.#events.clear();
    })();
    return this.#closing;
  }

  /**
   * A page of the relay's audit log: by default the entries about this user's data ("who read
   * my profile"), oldest first; admins may pass any `target`. Rejects with Unavailable offline.
   */
  audit(query?: AuditQuery): Promise<AuditPage> {
    return readAudit(this.#http, query);
  }

  /** @internal Sends an HTTP request queued in the outbox, after reconnecting. */
  get http(): HttpApi {
    return this.#http;
  }

  /** @internal The cipher of an encrypted doc; BadRequest when none is configured. */
  cipherOf(docName: string): Promise<DocCipher> {
    let cipher = this.#ciphers.get(docName);
    if (!cipher) {
      const provider = this.#requireCipher(docName);
      cipher = Promise.resolve().then(() => provider(docName));
      this.#ciphers.set(docName, cipher);
      // A provider that failed may succeed later (keys arrive): do not cache the failure.
      cipher.catch(() => this.#ciphers.delete(docName));
    }
    return cipher;
  }

  #requireCipher(docName: string): DocCipherProvider {
    if (this.#cipherFor) return this.#cipherFor;
    // A provisional device has its keys and its user id already: only guests have no encryption.
    if (
      this.#identity.apiKey === undefined &&
      this.#init.tokens === undefined &&
      !this.#identity.provisional
    ) {
      throw new SyncError(
        'Unauthorized',
        `${docName} is end-to-end encrypted: encryption needs a registered user (an API key or deviceName)`,
      );
    }
    return (name) => this.encryption.docKeys(name);
  }

  /** The caller as known locally, for `decide()` about `address` (see {@link callerOf}). */
  #caller(address?: Address): Caller {
    return callerOf(this.#identity, address);
  }

  /** Learns the user id of a key the relay had not confirmed yet; false while it cannot. */
  async #confirmKey(): Promise<boolean> {
    const key = this.#identity.apiKey;
    if (this.#identity.userId !== undefined || key === undefined || this.#init.tokens) return true;
    try {
      const identity = await this.#init.confirm(key);
      if (identity === undefined || this.#closed) return false;
      this.#identity = identity;
      this.#init.useIdentity(identity);
      this.#events.emit('identity', { userId: identity.userId, level: identity.level });
      return true;
    } catch (error) {
      this.#events.emit(
        'error',
        error instanceof SyncError
          ? error
          : new SyncError('Internal', 'confirming the API key failed', { cause: error }),
      );
      return false;
    }
  }

  #send(docName: string, message: Message): boolean {
    return this.#connection.send(encodeMuxFrame(docName, message));
  }

  async #onOpen(): Promise<void> {
    // A key given while the relay was unreachable: learn whose it is before any held edit goes out.
    if (!(await this.#confirmKey())) {
      // The socket is open but the relay did not say who we are: try again on a fresh socket.
      this.#connection.drop('the relay did not confirm the API key');
      return;
    }
    // Queued HTTP operations (offline deletes) go first, so a doc deleted offline is gone on
    // the relay before its later edits arrive.
    await this.userData.flushOutbox();
    if (!this.#connection.isOpen) return;
    for (const handle of this.#handles.values()) handle.attach();
    // Then the edits of docs no handle holds: released offline, or left by a crash.
    sendUnsentEdits({
      kv: this.store.kv,
      open: (name, encrypted) => this.doc(name, { encrypted }),
      isOnline: () => this.#connection.isOpen,
    }).catch((error) =>
      this.#events.emit('error', new SyncError('Internal', 'sending unsent edits failed', { cause: error })),
    );
    // An owner follows the identity rotations of members it missed while away (follow-sweep.ts).
    if (this.#cipherFor === undefined) this.encryption.onOnline().catch(() => undefined);
  }

  #onFrame(bytes: Uint8Array): void {
    let frame: ReturnType<typeof decodeMuxFrame>;
    try {
      frame = decodeMuxFrame(bytes);
    } catch (error) {
      this.#events.emit(
        'error',
        error instanceof SyncError ? error : new SyncError('InvalidMessage', String(error)),
      );
      return;
    }
    this.#handles.get(frame.docName)?.receive(frame.message);
  }

  async #checkAuth(): Promise<'ok' | 'unauthorized' | 'unknown'> {
    if (this.#identity.apiKey === undefined && this.#init.tokens === undefined) return 'unknown';
    try {
      const answer = await this.#http.json<{ valid?: unknown }>({ method: 'GET', path: '/keys/validate' });
      return answer.valid === false ? 'unauthorized' : 'ok';
    } catch (error) {
      return error instanceof SyncError && error.kind === 'Unauthorized' ? 'unauthorized' : 'unknown';
    }
  }
}
