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
  userIdOfSigningKey,
} from '@scopesync/core';
import { type AuditPage, type AuditQuery, readAudit } from './audit.ts';
import type { BackoffOptions } from './backoff.ts';
import { Blobs } from './blobs.ts';
import { type ClientStore, defaultClientStore } from './client-store.ts';
import {
  Connection,
  type ConnectionStatus,
  type LivenessOptions,
  type WebSocketClass,
} from './connection.ts';
import { DeviceRegistration } from './device-registration.ts';
import type { DocCipher, DocCipherProvider } from './doc-cipher.ts';
import { type DocFlags, DocHandle } from './doc-handle.ts';
import { DocProvider } from './doc-provider.ts';
import { Encryption } from './encryption.ts';
import { type FetchFunction, HttpApi } from './http-api.ts';
import {
  callerOf,
  confirmIdentity,
  type Identity,
  type ResolveIdentityOptions,
  registerDevice,
  resolveIdentity,
} from './identity.ts';
import { KeyApi } from './key-api.ts';
import { LocalDocLog, type PayloadCodec, PLAINTEXT_CODEC } from './local-doc-log.ts';
import { fileSeedStore, storeSeedStore } from './seed-store.ts';
import { TabChannel } from './tab-channel.ts';
import { resolveTokenIdentity, type TokenProvider, TokenSource } from './token-source.ts';
import { type FollowFailedEvent, type KeyChangedEvent, type TamperEvent, Trust } from './trust.ts';
import { Emitter, type Unsubscribe } from './typed-events.ts';
import { UserData } from './user-data.ts';

/** Options of {@link createClient}; everything but `url` has a default. */
export interface ClientOptions {
  /** The relay's base URL, `http(s)://host[:port]`. The socket goes to the same host (`ws(s)://…/sync`). */
  readonly url: string;
  /** An API key. Without one the client uses the key stored from an earlier session, registers `deviceName`, or is a guest. */
  readonly apiKey?: string | undefined;
  /**
   * A token from the app's own auth server instead of an API key (docs/auth.md): a string, or a
   * function returning a fresh one (called again on reconnect when it is about to expire, and
   * when the relay refuses it). Sent as `Authorization: Bearer` and in the WebSocket subprotocol.
   */
  readonly token?: TokenProvider | undefined;
  /**
   * Registers a new device (POST /keys) when there is no key yet; the key is kept, encrypted, in
   * the store. With the relay unreachable the client still starts, under the user id its own
   * signing key names, and registers in the background once the relay is back
   * ({@link SyncClient.registered}, docs/offline.md).
   */
  readonly deviceName?: string | undefined;
  /** Where the client keeps its data. Default: IndexedDB in browsers, memory elsewhere. Closed by {@link SyncClient.close}. */
  readonly store?: ClientStore | undefined;
  /**
   * Makes this device another device of the user whose 24-word recovery phrase this is (see
   * `client.encryption.exportRecoveryPhrase()`): same keys, so it reads and edits the same
   * private docs. With no API key stored yet, registering (`deviceName`) links this device to
   * that user and gets it its own API key.
   */
  readonly recoveryPhrase?: string | undefined;
  /**
   * Node: keep the root seed in this file (mode 0600, created on first use) instead of the
   * client store. Without it the seed sits in the store, wrapped under the device key.
   */
  readonly seedFile?: string | undefined;
  /**
   * Keep the root seed in the store sealed under this passphrase (Argon2id, libsodium sumo,
   * loaded only when a passphrase is given): a copy of the device's storage then does not reveal
   * it. Needed on every start that uses encryption; a seed stored without one is moved under it.
   * Not with `seedFile`.
   */
  readonly passphrase?: string | undefined;
  /**
   * Your own cipher for encrypted docs (USER_PRIVATE docs, encrypted blobs), replacing the
   * built-in end-to-end encryption (`client.encryption`). Either way they are never synced or
   * stored as plaintext.
   */
  readonly cipherFor?: DocCipherProvider | undefined;
  /** The WebSocket class. Default: the global `WebSocket` (pass `ws`'s in Node 20). */
  readonly WebSocket?: WebSocketClass | undefined;
  /** The fetch function. Default: the global `fetch`. */
  readonly fetch?: FetchFunction | undefined;
  /** Reconnection delays. */
  readonly backoff?: Partial<BackoffOptions> | undefined;
  /** When to ping a silent relay and when to give up on the socket (defaults: 15 s, then 10 s). */
  readonly liveness?: Partial<LivenessOptions> | undefined;
  /** Merge a doc's local log after this many entries (and snapshot encrypted docs on the relay after as many). */
  readonly compactAfter?: number | undefined;
  /** Entries of the in-memory cache of non-private userdata values (each holds its doc open). */
  readonly cacheSize?: number | undefined;
  /** HTTP request timeout, milliseconds. */
  readonly requestTimeoutMs?: number | undefined;
  /** How long `userData.get` waits for the relay when a value is not stored locally, milliseconds. */
  readonly syncTimeoutMs?: number | undefined;
  /** Largest tracked update sent in one frame, bytes. */
  readonly maxSendBytes?: number | undefined;
  /** Connect at once (default) or start offline until {@link SyncClient.connect}. */
  readonly connect?: boolean | undefined;
  /** Random source of the reconnect jitter, in [0, 1) (seeded tests pass theirs). Default Math.random. */
  readonly random?: (() => number) | undefined;
  /**
   * Share edits and presence with the other tabs of this browser (same origin, relay and user)
   * over a BroadcastChannel, so they see each other offline too. Default: on in a page (where
   * `document` exists), off elsewhere (Node: pass true to have clients of one process act as
   * tabs). docs/offline.md.
   */
  readonly tabSync?: boolean | undefined;
}

const DEFAULTS = {
  compactAfter: 100,
  cacheSize: 100,
  requestTimeoutMs: 15_000,
  syncTimeoutMs: 5_000,
  maxSendBytes: 1024 * 1024,
  connect: true,
} as const;

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

/**
 * Creates a client: opens the local store, works out the identity (API key, stored key,
 * device registration or guest; cached for offline starts) and connects to the relay.
 */
export async function createClient(options: ClientOptions): Promise<SyncClient> {
  const settings = {
    compactAfter: options.compactAfter ?? DEFAULTS.compactAfter,
    cacheSize: options.cacheSize ?? DEFAULTS.cacheSize,
    requestTimeoutMs: options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    syncTimeoutMs: options.syncTimeoutMs ?? DEFAULTS.syncTimeoutMs,
    maxSendBytes: options.maxSendBytes ?? DEFAULTS.maxSendBytes,
    connect: options.connect ?? DEFAULTS.connect,
  };
  const url = options.url.replace(/\/+$/, '');
  if (!/^https?:\/\//.test(url)) throw new SyncError('BadRequest', 'url must start with http:// or https://');
  if (options.passphrase !== undefined && options.seedFile !== undefined) {
    throw new SyncError(
      'BadRequest',
      'passphrase protects the seed in the store: it does not go with seedFile',
    );
  }
  const store = options.store ?? defaultClientStore();
  const fetchFn = options.fetch ?? (globalThis.fetch?.bind(globalThis) as FetchFunction | undefined);
  if (!fetchFn) throw new SyncError('BadRequest', 'no fetch function: pass { fetch }');
  let apiKey: string | undefined;
  const tokens = options.token === undefined ? undefined : new TokenSource(options.token);
  const http = new HttpApi({
    baseUrl: url,
    fetch: fetchFn,
    apiKey: () => apiKey,
    token: tokens,
    timeoutMs: settings.requestTimeoutMs,
  });
  const keyApi = new KeyApi(http);
  let userId: string | undefined;
  let encryption: Encryption | undefined;
  const trust = new Trust({
    kv: store.kv,
    api: keyApi,
    self: async () => {
      if (userId === undefined || encryption === undefined) {
        throw new SyncError('Unauthorized', 'comparing keys needs a registered user (an API key)');
      }
      return { userId, keys: await encryption.publicKeys() };
    },
  });
  encryption = new Encryption({
    trust,
    kv: store.kv,
    api: keyApi,
    seeds:
      options.seedFile === undefined
        ? storeSeedStore(store.kv, options.passphrase)
        : fileSeedStore(options.seedFile),
    deviceSeeds: storeSeedStore(store.kv, options.passphrase, 'device-seed'),
    recoveryPhrase: options.recoveryPhrase,
    userId: () => userId,
    usesApiKey: () => tokens === undefined && apiKey !== undefined,
  });
  let identity: Identity;
  let identityOptions: ResolveIdentityOptions;
  try {
    identityOptions = {
      kv: store.kv,
      http,
      url,
      apiKey: options.apiKey,
      // A recovery phrase links this device to its user: registering needs a name for it.
      deviceName: options.deviceName ?? (options.recoveryPhrase !== undefined ? 'linked device' : undefined),
      // A new device registers its public keys (with a proof) in the same call; a device with
      // the recovery phrase proves the user's key and joins that user.
      proveKeys:
        options.cipherFor === undefined || options.recoveryPhrase !== undefined
          ? (purpose) => encryption.provenKeys(purpose)
          : undefined,
      registrationPlan:
        options.cipherFor === undefined || options.recoveryPhrase !== undefined
          ? () => encryption.registrationPlan()
          : undefined,
      // Its key is registered for its entry in the device list: removing the entry revokes it.
      deviceId:
        options.cipherFor === undefined || options.recoveryPhrase !== undefined
          ? () => encryption.deviceId()
          : undefined,
      keysRegistered: (id) => encryption.registered(id),
      useKey: (key) => {
        apiKey = key;
      },
      // With the built-in keys a first start offline still works: the signing key names the
      // user id, and the device registers once the relay is back (docs/offline.md).
      provisionalUserId:
        options.cipherFor === undefined && options.recoveryPhrase === undefined
          ? async () => userIdOfSigningKey((await encryption.publicKeys()).signPublicKey)
          : undefined,
    };
    identity = tokens ? await resolveTokenIdentity(http) : await resolveIdentity(identityOptions);
    userId = identity.userId;
  } catch (error) {
    await Promise.allSettled([store.docs.close(), store.kv.close()]);
    throw error;
  }
  const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  if (!WebSocketImpl) {
    await Promise.allSettled([store.docs.close(), store.kv.close()]);
    throw new SyncError('BadRequest', 'no WebSocket class: pass { WebSocket } (the ws package in Node 20)');
  }
  const client = new SyncClient({
    url,
    store,
    http,
    identity,
    register: () => registerDevice(identityOptions),
    confirm: (key) => confirmIdentity(identityOptions, key),
    useIdentity: (registered) => {
      apiKey = registered.apiKey;
      userId = registered.userId;
    },
    encryption,
    trust,
    cipherFor: options.cipherFor,
    tokens,
    WebSocket: WebSocketImpl,
    backoff: options.backoff,
    liveness: options.liveness,
    random: options.random,
    compactAfter: settings.compactAfter,
    cacheSize: settings.cacheSize,
    syncTimeoutMs: settings.syncTimeoutMs,
    maxSendBytes: settings.maxSendBytes,
    tabSync: options.tabSync ?? 'document' in globalThis,
  });
  if (settings.connect) client.connect();
  return client;
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
    const log = new LocalDocLog(this.store.docs, this.store.kv, address.name, codec, this.#init.compactAfter);
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
