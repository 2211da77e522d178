import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  type ClientOptions,
  createClient,
  type DocHandle,
  type IdentityRotationResult,
  indexedDbClientStore,
  type SyncClient,
} from '@scopesync/client';
import { deriveIdentity, generateRootSeed } from '@scopesync/crypto';
import { IDBFactory, IDBKeyRange } from 'fake-indexeddb';
import { WebSocket } from 'ws';
import { startTestRelay, type TestRelay } from './support/start-test-relay.ts';

/*
 * Shared by the e2e-encryption-* tests: a real relay on SQLite whose every log line is
 * captured, devices on their own fake-indexeddb, and byte scans of everything either side
 * keeps (relay data dir files, relay logs, every IndexedDB record of every device).
 */

/** A relay whose log output (every level) is kept for scanning. */
export interface ScannedRelay extends TestRelay {
  readonly logs: string[];
}

/** A client on its own IndexedDB (fake-indexeddb), as a browser tab of one device would be. */
export interface Device {
  readonly client: SyncClient;
  readonly indexedDB: IDBFactory;
  /** Every API key the client sent in an HTTP request: none of them may show in a relay log. */
  readonly apiKeys: ReadonlySet<string>;
}

const cleanups: (() => Promise<void>)[] = [];

/** Closes everything the harness started, newest first. Call from afterEach. */
export async function cleanUp(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}

/**
 * Starts a relay on a fresh SQLite data dir, capturing its logs at every level, `info`
 * (one line per HTTP request and per socket opened and closed) and `notice` (denials) included.
 */
export async function startScannedRelay(dataDir?: string): Promise<ScannedRelay> {
  const logs: string[] = [];
  const relay = await startTestRelay({
    rateLimit: false,
    ...(dataDir === undefined ? {} : { dataDir }),
    log: (level, message, context) => {
      logs.push(`${level} ${message} ${inspect(context ?? {}, { depth: 8 })}`);
      if (level === 'error') console.error(`[relay ${level}] ${message}`, context?.error ?? '');
    },
  });
  cleanups.push(() => relay.close());
  return { ...relay, logs };
}

/** A device: a client on a fresh (or the given) fake-indexeddb. Closed by {@link cleanUp}. */
export async function openDevice(
  url: string,
  options: Partial<ClientOptions> = {},
  indexedDB: IDBFactory = new IDBFactory(),
): Promise<Device> {
  const apiKeys = new Set<string>();
  const client = await createClient({
    url,
    WebSocket,
    store: indexedDbClientStore({ indexedDB, IDBKeyRange }),
    backoff: { initialMs: 20, maxMs: 200 },
    fetch: (input, init) => {
      const key = new Headers(init?.headers).get('x-api-key');
      if (key) apiKeys.add(key);
      return fetch(input, init);
    },
    ...options,
  });
  cleanups.push(() => client.close());
  return { client, indexedDB, apiKeys };
}

/** Every file of a directory tree (the relay's SQLite files, WAL and SHM included). */
export async function filesOf(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(path, new Uint8Array(await readFile(path)));
  }
  return out;
}

/**
 * Every byte and string stored in every database of a fake-indexeddb factory: each record's
 * key and value, walked recursively (Uint8Arrays and ArrayBuffers as bytes, strings as UTF-8).
 * Returns one chunk per value so a marker cannot straddle two records by accident.
 */
export async function indexedDbContents(factory: IDBFactory): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  const encoder = new TextEncoder();
  const walk = (value: unknown, seen: Set<unknown>): void => {
    if (value === null || value === undefined) return;
    if (typeof value === 'string') chunks.push(encoder.encode(value));
    else if (value instanceof Uint8Array) chunks.push(value);
    else if (value instanceof ArrayBuffer) chunks.push(new Uint8Array(value));
    else if (ArrayBuffer.isView(value))
      chunks.push(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    else if (typeof value === 'object') {
      if (seen.has(value)) return;
      seen.add(value);
      for (const [key, field] of Object.entries(value)) {
        chunks.push(encoder.encode(key));
        walk(field, seen);
      }
    } else chunks.push(encoder.encode(String(value)));
  };
  for (const info of await factory.databases()) {
    const db = await request<IDBDatabase>(factory.open(info.name as string));
    try {
      for (const storeName of Array.from(db.objectStoreNames)) {
        const store = db.transaction(storeName, 'readonly').objectStore(storeName);
        const [keys, values] = await Promise.all([
          request<IDBValidKey[]>(store.getAllKeys()),
          request<unknown[]>(store.getAll()),
        ]);
        walk(keys, new Set());
        walk(values, new Set());
      }
    } finally {
      db.close();
    }
  }
  return chunks;
}

function request<T>(req: IDBRequest | IDBOpenDBRequest): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    req.onsuccess = () => resolve(req.result as T);
    req.onerror = () => reject(req.error);
  });
}

/** Where `marker` occurs among named byte chunks (file paths, "log", "idb:<device>"). */
export function findMarker(marker: string, sources: Map<string, Uint8Array[]>): string[] {
  const needle = Buffer.from(marker, 'utf8');
  const hits: string[] = [];
  for (const [name, chunks] of sources) {
    for (const chunk of chunks) {
      if (Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).includes(needle)) {
        hits.push(name);
        break;
      }
    }
  }
  return hits;
}

/** Everything the relay and the devices keep, by source, ready for {@link findMarker}. */
export async function everythingStored(
  relay: ScannedRelay,
  devices: Record<string, Device>,
): Promise<Map<string, Uint8Array[]>> {
  const sources = new Map<string, Uint8Array[]>();
  for (const [path, bytes] of await filesOf(relay.dataDir)) sources.set(path, [bytes]);
  sources.set('relay log', [Buffer.from(relay.logs.join('\n'), 'utf8')]);
  for (const [name, device] of Object.entries(devices)) {
    sources.set(`IndexedDB of ${name}`, await indexedDbContents(device.indexedDB));
  }
  return sources;
}

/** A marker string unlikely to occur by chance. */
export function marker(label: string): string {
  return `MARKER-${label}-${Math.random().toString(36).slice(2, 10)}`;
}

/** What the relay answered to one raw request on the multiplexed socket. */
export type RawAnswer =
  | { readonly type: 'ack'; readonly seq: number }
  | { readonly type: 'error'; readonly kind: string; readonly message: string };

/**
 * Sends one envelope (or snapshot, with `throughSeq`) on a fresh multiplexed socket as `apiKey`,
 * the way a modified client could: subscribe in encrypted mode, then enc-append (110) or
 * enc-snapshot (113). Resolves with the relay's answer to it; rejects if access is refused.
 */
export async function rawSend(
  wsUrl: string,
  apiKey: string,
  docName: string,
  envelope: Uint8Array,
  throughSeq?: number,
): Promise<RawAnswer> {
  const { decodeMuxFrame, encodeMuxFrame } = await import('@scopesync/core');
  const ws = new WebSocket(`${wsUrl}/sync?key=${encodeURIComponent(apiKey)}`);
  ws.binaryType = 'nodebuffer';
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return await new Promise<RawAnswer>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        const { message } = decodeMuxFrame(new Uint8Array(data));
        if (message.type === 'permission') {
          // Waiting (absent or hidden) is no access either: nothing may be written meanwhile.
          if (message.access === 'none' || message.access === 'waiting') {
            reject(new Error(`no access: ${message.reason || message.access}`));
          } else
            ws.send(
              encodeMuxFrame(
                docName,
                throughSeq === undefined
                  ? { type: 'enc-append', ref: 7, envelope }
                  : { type: 'enc-snapshot', ref: 7, throughSeq, snapshot: envelope },
              ),
            );
        } else if (message.type === 'ack' && message.ref === 7) resolve({ type: 'ack', seq: message.seq });
        else if (message.type === 'error')
          resolve({ type: 'error', kind: message.kind, message: message.message });
      });
      ws.send(encodeMuxFrame(docName, { type: 'subscribe', mode: 'encrypted', sinceSeq: 0 }));
    });
  } finally {
    ws.close();
  }
}

/** The text these tests write: the doc's root text `t`. */
export function docText(handle: DocHandle): string {
  return handle.doc.getText('t').toString();
}

/** Appends `words` to the doc's text `t` and waits until the relay acknowledged it. */
export async function appendAcked(handle: DocHandle, words: string): Promise<void> {
  await handle.transact((d) => {
    const t = d.getText('t');
    t.insert(t.length, words);
  });
  await handle.whenAcked();
}

/** Opens `name` on `device`, waits until it synced, and returns its text (the handle is released). */
export async function readDocText(device: Device, name: string, encrypted = true): Promise<string> {
  const handle = device.client.doc(name, { encrypted });
  try {
    await handle.whenSynced;
    return docText(handle);
  } finally {
    await handle.release();
  }
}

/** One device of a new user per name, opened in turn, each with its encryption ready. */
export async function openReadyDevices<const Names extends readonly string[]>(
  url: string,
  ...deviceNames: Names
): Promise<{ [K in keyof Names]: Device }> {
  const devices: Device[] = [];
  for (const deviceName of deviceNames) {
    const device = await openDevice(url, { deviceName });
    await device.client.encryption.ready();
    devices.push(device);
  }
  return devices as { [K in keyof Names]: Device };
}

/**
 * `device` rotates its user's identity (every document re-keyed; throws if any failed), then a
 * new device of the user opens from the new recovery phrase.
 */
export async function rotateOntoNewDevice(
  device: Device,
  url: string,
  deviceName = 'tablet',
): Promise<{ rotation: IdentityRotationResult; newDevice: Device }> {
  const rotation = await device.client.encryption.rotateIdentity();
  if (rotation.failed.length > 0) throw new Error(`rotation failed for ${inspect(rotation.failed)}`);
  const newDevice = await openDevice(url, { deviceName, recoveryPhrase: rotation.recoveryPhrase });
  return { rotation, newDevice };
}

/**
 * The relay (an admin, or a relay lying) publishes fresh keys for `userId` with no rotation
 * chain: an unexplained key change for everyone who pinned the old ones.
 */
export async function publishUnexplainedKeys(relay: TestRelay, userId: string): Promise<void> {
  const other = deriveIdentity(generateRootSeed());
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  await relay.relay.runtime.setUserKeys(userId, {
    signPk: b64(other.signPublicKey),
    boxPk: b64(other.boxPublicKey),
  });
}
