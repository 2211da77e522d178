// Creating a client: its options and their defaults, the store, the identity and the encryption it starts with.
import { SyncError, userIdOfSigningKey } from '@scopesync/core';
import type { BackoffOptions } from './backoff.ts';
import { type ClientStore, defaultClientStore } from './client-store.ts';
import type { LivenessOptions, WebSocketClass } from './connection.ts';
import type { DocCipherProvider } from './doc-cipher.ts';
import { Encryption } from './encryption.ts';
import { type FetchFunction, HttpApi } from './http-api.ts';
import {
  confirmIdentity,
  type Identity,
  type ResolveIdentityOptions,
  registerDevice,
  resolveIdentity,
} from './identity.ts';
import { KeyApi } from './key-api.ts';
import { fileSeedStore, storeSeedStore } from './seed-store.ts';
import { SyncClient } from './sync-client.ts';
import { resolveTokenIdentity, type TokenProvider, TokenSource } from './token-source.ts';
import { Trust } from './trust.ts';

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
