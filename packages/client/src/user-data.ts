import {
  type Caller,
  type DocAddress,
  type DocStore,
  decide,
  docAddress,
  flagsForWrite,
  isEncryptedScope,
  type KeyValueStore,
  namespaceOwner,
  type ReadFlag,
  type Scope,
  SyncError,
  type WriteFlag,
} from '@scopesync/core';
import type * as Y from 'yjs';
import { KV_TABLES } from './client-store.ts';
import type { DocHandle } from './doc-handle.ts';
import { type HttpApi, segment } from './http-api.ts';
import { followValue, type ValueErrorListener, type ValueListener } from './live-value.ts';
import { LruCache } from './lru-cache.ts';
import type { SyncClient } from './sync-client.ts';
import type { Unsubscribe } from './typed-events.ts';

/** A JSON value as userdata fields hold them. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

/** A userdata value: a JSON object whose top-level fields are the doc's `data` map entries. */
export type JsonObject = { readonly [field: string]: JsonValue };

/** Object flags for the write that creates a value (or narrows its permissions). */
export interface UserDataWriteOptions {
  /** 0 no read, 1 owner read, 2 public read. Default: the scope's widest. */
  readonly read?: ReadFlag | undefined;
  /** 0 no write, 1 owner write. Default: the scope's widest. */
  readonly write?: WriteFlag | undefined;
  /**
   * Resolve only once the relay has durably stored the write (acknowledged it), instead of as
   * soon as it is durable locally; reject with the relay's SyncError if it refuses it for good
   * (the local copy is then rolled back to what the relay confirmed). Offline, the promise
   * waits for the relay to come back — pair it with a timeout of your own if the UI needs one.
   */
  readonly waitForAck?: boolean | undefined;
}

/** Options of {@link UserData.list}. */
export interface UserDataListOptions {
  /** Only keys starting with this. */
  readonly prefix?: string | undefined;
}

/** A queued HTTP operation (the `outbox` table). */
interface QueuedRequest {
  readonly method: 'DELETE';
  readonly path: string;
  readonly doc: string;
}

/** What {@link UserData} needs from its client. */
export interface UserDataContext {
  readonly client: SyncClient;
  readonly http: HttpApi;
  readonly kv: KeyValueStore;
  readonly docs: DocStore;
  readonly cacheSize: number;
  readonly syncTimeoutMs: number;
  /** The caller as known locally, for `decide()` about `address`. */
  caller(address?: DocAddress): Caller;
  isOnline(): boolean;
  /** True while the client is trying to (re)connect: the relay may be reachable. */
  isConnecting(): boolean;
  emitError(error: SyncError): void;
}

interface CacheEntry {
  readonly handle: DocHandle;
  value: JsonObject | undefined;
  valid: boolean;
  unbind: () => void;
}

/** The name of the Y.Map that holds a userdata value's fields (docs/wire-protocol.md). */
export const DATA_MAP = 'data';

/**
 * Scoped JSON values, each one document `<SCOPE>/<ns>/<key>` whose fields live in
 * `doc.getMap('data')` — the representation the relay's HTTP userdata API reads and writes.
 * Reads and writes go to the local store first and work offline; writes are synced like any
 * doc edit. Values of non-private scopes are cached in an LRU keyed by scope + namespace +
 * key; each cached entry keeps its doc open so that remote writes invalidate it.
 */
export class UserData {
  readonly #ctx: UserDataContext;
  readonly #cache: LruCache<string, CacheEntry>;
  #outboxSeq = 0;
  #flushing: Promise<void> | undefined;

  constructor(ctx: UserDataContext) {
    this.#ctx = ctx;
    this.#cache = new LruCache<string, CacheEntry>(ctx.cacheSize, (_key, entry) => {
      entry.unbind();
      void entry.handle.release();
    });
  }

  /**
   * The value, or undefined when there is none. Served from the cache or the local store;
   * a value this device has never seen is fetched from the relay when online (waiting at
   * most `syncTimeoutMs`). Forbidden when this client may not read the scope.
   */
  async get<T extends JsonObject = JsonObject>(
    scope: Scope | string,
    ns: string,
    key: string,
  ): Promise<T | undefined> {
    const address = docAddress(scope, ns, key);
    this.#assertAllowed(address, 'read');
    const entry = this.#cache.get(address.name);
    if (entry) {
      if (!entry.valid) {
        entry.value = await this.#read(entry.handle);
        // A value read over HTTP (the doc is still empty) is not the doc's: do not keep it.
        entry.valid = !isEmpty(entry.handle.doc) || entry.value === undefined;
      }
      return copy(entry.value) as T | undefined;
    }
    const handle = this.#ctx.client.doc(address);
    let value: JsonObject | undefined;
    try {
      value = await this.#read(handle);
    } catch (error) {
      await handle.release();
      throw error;
    }
    if (isEncryptedScope(address.scope)) await handle.release();
    else this.#adopt(address.name, handle, value);
    return copy(value) as T | undefined;
  }

  /**
   * Live value, like Firestore's `onSnapshot`: calls `listener(value, meta)` as soon as the
   * local copy is loaded (offline too), then after every change — this client's writes, another
   * tab's (offline too), the relay's sync of other clients' writes — and whenever
   * `meta.pending` (writes not yet acknowledged by the relay) or `meta.synced` flips. `value` is
   * a fresh copy each time, undefined while there is none. Returns the function that stops it.
   * Forbidden at once when this client may not read the scope; `onError` hears why a
   * subscription stopped for good (access revoked: Forbidden), after which no call follows.
   */
  subscribe<T extends JsonObject = JsonObject>(
    scope: Scope | string,
    ns: string,
    key: string,
    listener: ValueListener<T>,
    onError?: ValueErrorListener,
  ): Unsubscribe {
    const address = docAddress(scope, ns, key);
    this.#assertAllowed(address, 'read');
    const handle = this.#ctx.client.doc(address);
    return followValue<T>(handle, (doc) => readValue(doc) as T | undefined, listener, onError);
  }

  /**
   * Replaces the value (fields not in `value` are deleted). Forbidden at once, offline too,
   * when this client may not write it; BadRequest for flags past the scope's ceiling.
   * Resolves once the write is durable locally (and queued for the relay), or with
   * `{ waitForAck: true }` once the relay has stored it.
   */
  async set(
    scope: Scope | string,
    ns: string,
    key: string,
    value: JsonObject,
    options: UserDataWriteOptions = {},
  ): Promise<void> {
    checkObject(value);
    await this.#write(scope, ns, key, options, (map) => {
      for (const field of [...map.keys()]) if (!Object.hasOwn(value, field)) map.delete(field);
      for (const [field, fieldValue] of Object.entries(value)) {
        if (fieldValue === undefined) continue;
        if (!sameJson(map.get(field) as JsonValue | undefined, fieldValue)) map.set(field, copy(fieldValue));
      }
    });
  }

  /**
   * Merges top-level fields into the value (a field set to `undefined` is deleted); other
   * fields stay, including concurrent edits of other fields by other clients.
   */
  async update(
    scope: Scope | string,
    ns: string,
    key: string,
    partial: { readonly [field: string]: JsonValue | undefined },
    options: UserDataWriteOptions = {},
  ): Promise<void> {
    checkObject(partial);
    await this.#write(scope, ns, key, options, (map) => {
      for (const [field, fieldValue] of Object.entries(partial)) {
        if (fieldValue === undefined) map.delete(field);
        else if (!sameJson(map.get(field) as JsonValue | undefined, fieldValue))
          map.set(field, copy(fieldValue));
      }
    });
  }

  /**
   * Deletes the value: HTTP DELETE on the relay and the local copy. Offline (relay
   * unreachable) the delete is queued in the persisted outbox and sent, before any later
   * edit of the doc, when the client reconnects; the local copy goes at once either way.
   */
  async delete(scope: Scope | string, ns: string, key: string): Promise<void> {
    const address = docAddress(scope, ns, key);
    this.#assertAllowed(address, 'delete');
    const path = `/userdata/${segment(address.namespace)}/${segment(address.scope)}/${segment(address.key)}`;
    try {
      await this.#ctx.http.send({ method: 'DELETE', path });
    } catch (error) {
      if (error instanceof SyncError && error.kind === 'NotFound') {
        // Already gone on the relay (or never synced): only the local copy is left to remove.
      } else if (error instanceof SyncError && error.kind === 'Unavailable') {
        await this.#enqueue({ method: 'DELETE', path, doc: address.name });
      } else {
        throw error;
      }
    }
    this.#invalidate(address.name, true);
    await this.#wipeLocal(address.name);
  }

  /**
   * Keys of the namespace this client can see: the ones stored locally merged with the
   * relay's list (GET /userdata/<ns>/<SCOPE>) when it is reachable. Sorted.
   */
  async list(scope: Scope | string, ns: string, options: UserDataListOptions = {}): Promise<string[]> {
    const address = docAddress(scope, ns, 'x');
    this.#assertAllowed(address, 'list');
    const prefix = options.prefix ?? '';
    const base = `${address.scope}/${address.namespace}/`;
    const keys = new Set<string>();
    for (const doc of await this.#ctx.docs.docs(base + prefix)) keys.add(doc.slice(base.length));
    const deleted = new Set((await this.#queued()).map((q) => q.doc));
    for (const doc of deleted) keys.delete(doc.slice(base.length));
    try {
      let cursor: string | undefined;
      for (let page = 0; page < 1000; page++) {
        const query = new URLSearchParams();
        if (prefix) query.set('prefix', prefix);
        if (cursor) query.set('cursor', cursor);
        const qs = query.toString();
        const answer = await this.#ctx.http.json<{ keys?: unknown; cursor?: unknown; next_cursor?: unknown }>(
          {
            method: 'GET',
            path: `/userdata/${segment(address.namespace)}/${segment(address.scope)}${qs ? `?${qs}` : ''}`,
          },
        );
        for (const k of Array.isArray(answer.keys) ? answer.keys : []) {
          if (typeof k === 'string' && !deleted.has(base + k)) keys.add(k);
        }
        const next =
          typeof answer.next_cursor === 'string'
            ? answer.next_cursor
            : typeof answer.cursor === 'string'
              ? answer.cursor
              : undefined;
        if (!next || next === cursor) break;
        cursor = next;
      }
    } catch (error) {
      if (!(error instanceof SyncError && error.kind === 'Unavailable')) throw error;
      // Offline: what this device has is the answer.
    }
    return [...keys].filter((k) => k.startsWith(prefix)).sort();
  }

  /** @internal Sends queued HTTP operations; stops at the first one the relay cannot be reached for. */
  flushOutbox(): Promise<void> {
    this.#flushing ??= (async () => {
      try {
        for (const { key, value } of await this.#ctx.kv.list<QueuedRequest>(KV_TABLES.outbox)) {
          try {
            await this.#ctx.http.send({ method: value.method, path: value.path });
          } catch (error) {
            if (error instanceof SyncError && error.kind === 'Unavailable') return;
            if (!(error instanceof SyncError && error.kind === 'NotFound')) {
              this.#ctx.emitError(
                error instanceof SyncError
                  ? error
                  : new SyncError('Internal', `queued ${value.method} ${value.path} failed`),
              );
            }
          }
          await this.#ctx.kv.delete(KV_TABLES.outbox, key);
        }
      } catch (error) {
        this.#ctx.emitError(new SyncError('Internal', 'flushing the outbox failed', { cause: error }));
      } finally {
        this.#flushing = undefined;
      }
    })();
    return this.#flushing;
  }

  /** @internal Releases every cached doc. */
  async close(): Promise<void> {
    this.#cache.clear();
  }

  async #write(
    scope: Scope | string,
    ns: string,
    key: string,
    options: UserDataWriteOptions,
    change: (map: Y.Map<unknown>) => void,
  ): Promise<void> {
    const address = docAddress(scope, ns, key);
    // Flags past the scope's ceiling fail here, offline too.
    if (options.read !== undefined || options.write !== undefined) {
      flagsForWrite(this.#ctx.caller(address), address, null, { read: options.read, write: options.write });
    }
    const flags = { read: options.read, write: options.write };
    const entry = this.#cache.get(address.name);
    if (entry) {
      if (flags.read !== undefined || flags.write !== undefined) {
        // Takes and gives back a reference: only to hand the handle the new flags.
        entry.handle.retain(flags);
        void entry.handle.release();
      }
      await entry.handle.transact((doc) => change(doc.getMap(DATA_MAP)));
      entry.valid = false;
      if (options.waitForAck) await this.#acked(address.name);
      return;
    }
    const handle = this.#ctx.client.doc(address, flags);
    try {
      await handle.transact((doc) => change(doc.getMap(DATA_MAP)));
    } catch (error) {
      await handle.release();
      throw error;
    }
    if (isEncryptedScope(address.scope)) {
      try {
        if (options.waitForAck) await handle.whenAcked();
      } finally {
        await handle.release();
      }
      return;
    }
    this.#adopt(address.name, handle, undefined);
    if (options.waitForAck) await this.#acked(address.name);
  }

  /** Waits for the relay's ack of every write of a doc, holding the doc open meanwhile. */
  async #acked(name: string): Promise<void> {
    const handle = this.#ctx.client.doc(name);
    try {
      await handle.whenAcked();
    } finally {
      await handle.release();
    }
  }

  /**
   * The value in the doc. Nothing stored locally: when the socket is open, wait (bounded) for
   * the doc to sync; while it is still connecting, ask the HTTP API (a relay that is down
   * answers at once, a socket would only time out). The HTTP answer is not cached: the doc
   * syncs once the socket opens, and that update invalidates the entry.
   */
  async #read(handle: DocHandle): Promise<JsonObject | undefined> {
    await handle.whenLoaded;
    if (!isEmpty(handle.doc)) return readValue(handle.doc);
    if (this.#ctx.isOnline()) {
      await within(handle.whenSynced, this.#ctx.syncTimeoutMs);
      return readValue(handle.doc);
    }
    const address = handle.address;
    if (this.#ctx.isConnecting() && address.kind === 'doc' && !isEncryptedScope(address.scope)) {
      try {
        const answer = await this.#ctx.http.json<{ value?: unknown }>({
          method: 'GET',
          path: `/userdata/${segment(address.namespace)}/${segment(address.scope)}/${segment(address.key)}`,
        });
        // The socket may have synced the doc meanwhile: the doc wins.
        if (!isEmpty(handle.doc)) return readValue(handle.doc);
        const value = answer.value;
        if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as JsonObject;
      } catch (error) {
        if (!(error instanceof SyncError) || (error.kind !== 'NotFound' && error.kind !== 'Unavailable'))
          throw error;
      }
    }
    return readValue(handle.doc);
  }

  #assertAllowed(address: DocAddress, action: 'read' | 'delete' | 'list'): void {
    const decision = decide({
      caller: this.#ctx.caller(address),
      action,
      address,
      // Nothing is known locally about the object: judge the scope, let the relay judge the flags.
      object: { owner: namespaceOwner(address), read: 2, write: 1 },
    });
    if (!decision.allowed)
      throw new SyncError('Forbidden', `cannot ${action} ${address.name}: ${decision.reason}`);
  }

  /** Caches a value; the cache takes over the caller's reference to `handle` (released on eviction). */
  #adopt(name: string, handle: DocHandle, value: JsonObject | undefined): void {
    const entry: CacheEntry = {
      handle,
      value,
      valid: value !== undefined && !isEmpty(handle.doc),
      unbind: () => undefined,
    };
    let doc = handle.doc;
    const onUpdate = (): void => {
      entry.valid = false;
    };
    doc.on('update', onUpdate);
    const offReset = handle.on('reset', ({ doc: fresh }) => {
      doc.off('update', onUpdate);
      doc = fresh;
      doc.on('update', onUpdate);
      entry.valid = false;
    });
    const offClosed = handle.on('closed', () => {
      if (this.#cache.has(name)) this.#cache.delete(name);
    });
    entry.unbind = () => {
      doc.off('update', onUpdate);
      offReset();
      offClosed();
    };
    this.#cache.set(name, entry);
  }

  #invalidate(name: string, drop: boolean): void {
    if (drop) {
      this.#cache.delete(name);
      return;
    }
    const entry = this.#cache.get(name);
    if (entry) entry.valid = false;
  }

  async #wipeLocal(name: string): Promise<void> {
    const open = this.#ctx.client.doc(name);
    try {
      await open.whenLoaded.catch(() => undefined);
      await open.wipe();
    } finally {
      await open.release();
    }
  }

  async #enqueue(request: QueuedRequest): Promise<void> {
    const id = `${Date.now().toString(36).padStart(10, '0')}-${(this.#outboxSeq++).toString(36).padStart(6, '0')}`;
    await this.#ctx.kv.put(KV_TABLES.outbox, id, request);
  }

  async #queued(): Promise<QueuedRequest[]> {
    return (await this.#ctx.kv.list<QueuedRequest>(KV_TABLES.outbox)).map((e) => e.value);
  }
}

function readValue(doc: Y.Doc): JsonObject | undefined {
  const map = doc.getMap(DATA_MAP);
  if (map.size === 0) return undefined;
  return map.toJSON() as JsonObject;
}

function isEmpty(doc: Y.Doc): boolean {
  return doc.getMap(DATA_MAP).size === 0;
}

function checkObject(value: unknown): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new SyncError('BadRequest', 'a userdata value must be a JSON object');
  }
  try {
    JSON.stringify(value);
  } catch (error) {
    throw new SyncError('BadRequest', 'a userdata value must be JSON-serialisable', { cause: error });
  }
}

function sameJson(a: JsonValue | undefined, b: JsonValue): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}

function copy<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  if (timer !== undefined) clearTimeout(timer);
}
