import {
  type Address,
  type Caller,
  isLevel,
  isUserId,
  isUserScope,
  type KeyValueStore,
  type Level,
  SyncError,
  type UserId,
} from '@scopesync/core';
import { KV_TABLES } from './client-store.ts';
import type { HttpApi } from './http-api.ts';
import { type ProvenKeys, provenKeysJson } from './key-api.ts';

/** Who this client is, as the relay last confirmed it. */
export interface Identity {
  /** Undefined for a guest, or before the relay has ever validated the key. */
  readonly userId: string | undefined;
  readonly level: Level;
  readonly apiKey: string | undefined;
  /**
   * True for a device that could not reach the relay on its first start: its user id is the one
   * its own signing key names (core's `userIdOfSigningKey`), it has no API key yet, and
   * {@link registerDevice} is retried until the relay has registered it (docs/offline.md).
   */
  readonly provisional?: boolean | undefined;
}

/**
 * The caller `identity` is for `decide()` about `address`, as known locally. A key the relay has
 * not confirmed yet (given while the relay was unreachable, nothing cached) may be the owner of
 * any user namespace: its edits are kept and held in the outbox, and only sent once the relay
 * has said whose key it is (the client asks first thing on each new socket) — the relay has the
 * last word, so an edit of someone else's doc is refused then, visibly, instead of at once.
 */
export function callerOf(identity: Identity, address?: Address): Caller {
  const { userId, level } = identity;
  if (userId !== undefined) return { kind: 'user', userId: userId as UserId, level };
  if (identity.apiKey === undefined) return { kind: 'guest' };
  const maybeMine =
    address?.kind === 'doc' && isUserScope(address.scope) ? address.namespace : 'user_unknown';
  return { kind: 'user', userId: maybeMine as UserId, level };
}

/** The identity record as stored: the API key only ever encrypted under the device key. */
interface StoredIdentity {
  readonly url: string;
  readonly userId?: string | undefined;
  readonly level?: number | undefined;
  readonly deviceName?: string | undefined;
  readonly apiKey?: { readonly iv: Uint8Array; readonly data: Uint8Array } | undefined;
  /** Set while the device is not registered yet (first start offline). */
  readonly provisional?: boolean | undefined;
}

const DEVICE_KEY = 'device-key';
const SELF = 'self';
/** Binds the ciphertext to its purpose, so the device key's other uses cannot be confused with it. */
const API_KEY_AAD = new TextEncoder().encode('scopesync:api-key:v1');

/**
 * The device key: an AES-GCM key that encrypts the API key at rest. In a store that keeps
 * structured-cloneable values (IndexedDB) it is a non-extractable CryptoKey, so script on
 * the page can use it but never export it (the browser still writes its bytes into the
 * IndexedDB files: a copy of them holds the key). A store that only keeps bytes (SQLite in Node)
 * gets the raw key next to the data it protects — that guards against copying the API key
 * out of the records, not against someone holding the whole database file.
 */
export async function deviceKey(kv: KeyValueStore): Promise<CryptoKey> {
  const stored = await kv.get<unknown>(KV_TABLES.identity, DEVICE_KEY);
  const subtle = globalThis.crypto.subtle;
  if (stored instanceof Uint8Array) {
    return subtle.importKey('raw', stored as Uint8Array<ArrayBuffer>, { name: 'AES-GCM' }, false, [
      'encrypt',
      'decrypt',
    ]);
  }
  if (stored !== undefined && isCryptoKey(stored)) return stored;
  if (kv.cloneable) {
    const key = await subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
    await kv.put(KV_TABLES.identity, DEVICE_KEY, key);
    return key;
  }
  const raw = globalThis.crypto.getRandomValues(new Uint8Array(32));
  await kv.put(KV_TABLES.identity, DEVICE_KEY, raw);
  return subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

function isCryptoKey(value: unknown): value is CryptoKey {
  if (typeof CryptoKey !== 'undefined' && value instanceof CryptoKey) return true;
  const v = value as { type?: unknown; algorithm?: { name?: unknown } } | null;
  return typeof v === 'object' && v !== null && v.type === 'secret' && v.algorithm?.name === 'AES-GCM';
}

async function sealApiKey(key: CryptoKey, apiKey: string): Promise<{ iv: Uint8Array; data: Uint8Array }> {
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const data = await globalThis.crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: API_KEY_AAD },
    key,
    new TextEncoder().encode(apiKey),
  );
  return { iv, data: new Uint8Array(data) };
}

async function openApiKey(key: CryptoKey, sealed: { iv: Uint8Array; data: Uint8Array }): Promise<string> {
  const plain = await globalThis.crypto.subtle.decrypt(
    { name: 'AES-GCM', iv: sealed.iv as Uint8Array<ArrayBuffer>, additionalData: API_KEY_AAD },
    key,
    sealed.data as Uint8Array<ArrayBuffer>,
  );
  return new TextDecoder().decode(plain);
}

/** How a new device registers its keys: see {@link ResolveIdentityOptions.registrationPlan}. */
export interface RegistrationPlan {
  readonly purpose: 'register' | 'link';
  readonly strict: boolean;
}

/** What {@link resolveIdentity} needs. */
export interface ResolveIdentityOptions {
  readonly kv: KeyValueStore;
  readonly http: HttpApi;
  /** The relay URL the identity belongs to (a stored identity for another relay is ignored). */
  readonly url: string;
  readonly apiKey?: string | undefined;
  readonly deviceName?: string | undefined;
  /** Receives the key as soon as it is known, so the validation request carries it. */
  readonly useKey: (apiKey: string | undefined) => void;
  /**
   * The public keys to register with a new device, with their proof: `register` makes a new
   * user, `link` (a device that imported the recovery phrase) joins the user holding them.
   * A failure here fails the registration: a device never silently becomes a user without keys.
   */
  readonly proveKeys?: ((purpose: 'register' | 'link') => Promise<ProvenKeys>) | undefined;
  /**
   * How this device registers its keys: `link` when its seed came from elsewhere. `strict`
   * (a typed recovery phrase) turns "no user holds these keys" into NotFound; otherwise (a seed
   * this device kept from an earlier, unfinished start) it registers a new user instead.
   */
  readonly registrationPlan?: (() => Promise<RegistrationPlan>) | undefined;
  /**
   * This device's id in the user's device list: a new device's API key is registered for it, so
   * that a list without this device revokes that key (docs/encryption.md, "Per-device keys").
   */
  readonly deviceId?: (() => Promise<string>) | undefined;
  /** Told the user id the relay registered the proven keys for. */
  readonly keysRegistered?: ((userId: string) => Promise<void>) | undefined;
  /**
   * The user id this device's signing key names, computed locally. Given, a first start with
   * the relay unreachable does not fail: it yields a provisional identity under that id.
   */
  readonly provisionalUserId?: (() => Promise<string>) | undefined;
}

/**
 * Works out the client's identity: an explicit API key; else the key stored (encrypted) from
 * an earlier session; else a new device registered with POST /keys when a device name is
 * given; else a guest. Then asks GET /keys/validate for the user id and level, and falls back
 * to the cached identity when the relay is unreachable (offline start). A key the relay
 * rejects fails with Unauthorized.
 */
export async function resolveIdentity(options: ResolveIdentityOptions): Promise<Identity> {
  const { kv, http, url } = options;
  const stored = await kv.get<StoredIdentity>(KV_TABLES.identity, SELF);
  const cached = stored && stored.url === url ? stored : undefined;
  const key = await deviceKey(kv);

  let storedKey: string | undefined;
  if (cached?.apiKey) {
    try {
      storedKey = await openApiKey(key, cached.apiKey);
    } catch (error) {
      throw new SyncError('Internal', 'the stored API key could not be decrypted with this device key', {
        cause: error,
      });
    }
  }
  let apiKey = options.apiKey ?? storedKey;
  let userId = cached?.userId;
  let level: Level = isLevel(cached?.level) ? cached.level : 1;
  if (options.apiKey !== undefined && options.apiKey !== storedKey) {
    // A different key than last time: whatever was cached describes someone else.
    userId = undefined;
    level = 1;
  }
  if (apiKey === undefined && options.deviceName !== undefined) {
    options.useKey(undefined);
    const provisional = cached?.provisional === true && cached.userId !== undefined;
    try {
      const registered = await registerDevice(options);
      apiKey = registered.apiKey;
      userId = registered.userId;
      level = registered.level;
    } catch (error) {
      if (!(error instanceof SyncError) || error.kind !== 'Unavailable' || !options.provisionalUserId)
        throw error;
      // First start with the relay unreachable: work under the id our own key names, and
      // register once the relay is back (docs/offline.md).
      userId = provisional ? cached.userId : await options.provisionalUserId();
      const identity = { url, userId, level: 1, deviceName: options.deviceName, provisional: true };
      if (!provisional) await kv.put(KV_TABLES.identity, SELF, identity);
      return { userId, level: 1, apiKey: undefined, provisional: true };
    }
  }
  options.useKey(apiKey);
  if (apiKey === undefined) return { userId: undefined, level: 0, apiKey: undefined };

  try {
    const answer = await http.json<{ valid?: unknown; user_id?: unknown; level?: unknown }>({
      method: 'GET',
      path: '/keys/validate',
    });
    if (answer.valid === false)
      throw new SyncError('Unauthorized', 'the relay says the API key is not valid');
    if (isUserId(answer.user_id)) userId = answer.user_id;
    if (isLevel(answer.level)) level = answer.level;
  } catch (error) {
    if (!(error instanceof SyncError) || error.kind !== 'Unavailable') throw error;
    // Offline start: the cached identity stands until the relay can be asked.
  }
  const previous = cached;
  if (!previous || previous.userId !== userId || previous.level !== level || options.apiKey !== undefined) {
    await store(
      kv,
      key,
      { url, userId, level, deviceName: options.deviceName ?? previous?.deviceName },
      apiKey,
    );
  }
  return { userId, level, apiKey };
}

/**
 * Asks the relay who `apiKey` is (GET /keys/validate) and caches the answer with the key (sealed),
 * so the next start knows it offline. For a client that started with a key while the relay was
 * unreachable and nothing was cached: its user id is learned here, once the relay answers.
 * Undefined while the relay is unreachable; Unauthorized for a key the relay refuses.
 */
export async function confirmIdentity(
  options: Pick<ResolveIdentityOptions, 'kv' | 'http' | 'url' | 'deviceName'>,
  apiKey: string,
): Promise<Identity | undefined> {
  let answer: { valid?: unknown; user_id?: unknown; level?: unknown };
  try {
    answer = await options.http.json({ method: 'GET', path: '/keys/validate' });
  } catch (error) {
    if (error instanceof SyncError && error.kind === 'Unavailable') return undefined;
    throw error;
  }
  if (answer.valid === false) throw new SyncError('Unauthorized', 'the relay says the API key is not valid');
  if (!isUserId(answer.user_id)) return undefined;
  const level: Level = isLevel(answer.level) ? answer.level : 1;
  const previous = await options.kv.get<StoredIdentity>(KV_TABLES.identity, SELF);
  const deviceName = options.deviceName ?? (previous?.url === options.url ? previous.deviceName : undefined);
  await store(
    options.kv,
    await deviceKey(options.kv),
    { url: options.url, userId: answer.user_id, level, deviceName },
    apiKey,
  );
  return { userId: answer.user_id, level, apiKey };
}

/**
 * Registers this device with POST /keys (with its proven public keys) and stores the new API
 * key, encrypted, before anything else can fail: the key is shown only once. No silent
 * fallback: a device that cannot prove its keys never ends up a user without them (or, with a
 * recovery phrase, a new empty user instead of the phrase's own). Unreachable relay: Unavailable
 * (a provisional device retries later, device-registration.ts).
 */
export async function registerDevice(
  options: ResolveIdentityOptions,
): Promise<Identity & { readonly userId: string; readonly apiKey: string }> {
  const { kv, url } = options;
  const plan: RegistrationPlan = (await options.registrationPlan?.()) ?? {
    purpose: 'register',
    strict: true,
  };
  let registered = await postKeys(options, plan.purpose);
  if (registered === 'unknown-keys') {
    if (plan.strict) {
      throw new SyncError(
        'NotFound',
        'no user of this relay holds the keys of this recovery phrase: check its words (a word typed wrong can still pass the checksum)',
      );
    }
    // A seed this device kept from an earlier start that never finished registering.
    registered = await postKeys(options, 'register');
  }
  // Another device of this identity registered the keys first (a second tab of a first start
  // offline, both registering once the relay is back): join that user.
  if (registered === 'held-keys') registered = await postKeys(options, 'link');
  if (typeof registered === 'string') throw new SyncError('InvalidMessage', 'POST /keys refused to register');
  const { answer, proven } = registered;
  await store(
    kv,
    await deviceKey(kv),
    { url, userId: answer.userId, level: 1, deviceName: options.deviceName },
    answer.key,
  );
  if (proven) await options.keysRegistered?.(answer.userId);
  return { userId: answer.userId, level: 1, apiKey: answer.key };
}

/**
 * POST /keys with `purpose`'s proof: the answer, `unknown-keys` when a link found no user
 * holding the keys, or `held-keys` when a registration found a user holding them already.
 */
async function postKeys(
  options: ResolveIdentityOptions,
  purpose: 'register' | 'link',
): Promise<
  { answer: { key: string; userId: string }; proven: ProvenKeys | undefined } | 'unknown-keys' | 'held-keys'
> {
  const proven = await options.proveKeys?.(purpose);
  const deviceId = await options.deviceId?.();
  let answer: { key?: unknown; user_id?: unknown; linked?: unknown };
  try {
    answer = await options.http.json<{ key?: unknown; user_id?: unknown; linked?: unknown }>({
      method: 'POST',
      path: '/keys',
      json: {
        device_name: options.deviceName,
        ...(deviceId === undefined ? {} : { device_id: deviceId }),
        ...(proven ? provenKeysJson(proven) : {}),
      },
    });
  } catch (error) {
    if (proven?.purpose === 'link' && error instanceof SyncError && error.kind === 'NotFound')
      return 'unknown-keys';
    if (proven?.purpose === 'register' && error instanceof SyncError && error.kind === 'Conflict')
      return 'held-keys';
    throw error;
  }
  if (typeof answer.key !== 'string' || !isUserId(answer.user_id)) {
    throw new SyncError('InvalidMessage', 'POST /keys answered without a key and user id');
  }
  if (proven?.purpose === 'link' && answer.linked !== true) {
    // A relay that ignored the purpose made a new user: never take that for the keys' own.
    throw new SyncError('InvalidMessage', 'the relay did not link this device to the user of its keys');
  }
  return { answer: { key: answer.key, userId: answer.user_id }, proven };
}

async function store(
  kv: KeyValueStore,
  key: CryptoKey,
  identity: Omit<StoredIdentity, 'apiKey'>,
  apiKey: string,
): Promise<void> {
  const record: StoredIdentity = { ...identity, apiKey: await sealApiKey(key, apiKey) };
  await kv.put(KV_TABLES.identity, SELF, record);
}
