import type { Locks } from '@scopesync/core';
import {
  type Action,
  type Address,
  type AuditChannel,
  type Caller,
  type Decision,
  type DocAddress,
  isEncryptedScope,
  type ObjectMeta,
  type ReadFlag,
  type RelayStore,
  SyncError,
  type WriteFlag,
} from '@scopesync/core';
import type { AccessControl } from '../access-control.ts';
import { type AccessFence, NO_FENCE } from '../cluster/narrowing-fence.ts';
import type { DocHub } from '../documents/doc-hub.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { ChangeOrigin } from '../events/relay-events.ts';
import type { RequestedFlags } from '../sync/sync-authority.ts';
import { readUserValue, writeUserValue } from '../userdata-value.ts';
import { accessChangeOf } from './access-narrowing.ts';
import { deniedError } from './denied-error.ts';

/** A userdata value with the relay's metadata, as HTTP and the runtime return it. */
export interface StoredValue {
  readonly value: Record<string, unknown>;
  /** The document's head seq: it increases with every committed write. */
  readonly version: number;
  readonly owner: string;
  readonly read: ReadFlag;
  readonly write: WriteFlag;
}

/** What a value write asks for besides the value. */
export interface ValueWriteOptions {
  readonly read?: ReadFlag | undefined;
  readonly write?: WriteFlag | undefined;
  /** Fails with PreconditionFailed unless the current version is this (0: must not exist). */
  readonly ifVersion?: number | undefined;
  /** A new owner: only the server runtime may set it. */
  readonly owner?: string | undefined;
}

/** The object's metadata before and after {@link ObjectService.prepareWrite}. */
export interface PreparedWrite {
  readonly before: ObjectMeta | null;
  readonly after: ObjectMeta;
}

/** Options of an {@link ObjectService}. */
export interface ObjectServiceOptions {
  readonly access: AccessControl;
  readonly store: RelayStore;
  readonly hub: DocHub;
  readonly bus: EventBus;
  readonly locks: Locks;
  /** Waited on after access narrowed, so every relay enforces it (several relays); default none. */
  readonly fence?: AccessFence | undefined;
}

/**
 * The use cases on scoped documents, written once for every adapter (HTTP routes, the sync
 * endpoints, the server runtime): check → If-Match → prepare the object → narrow access →
 * write content → events. "Narrow access" means the `access-changed` event of a creation or a
 * flag/owner change has been handled by every subscription before the content is written, so
 * nothing written under the new state reaches a caller who lost read access.
 */
export class ObjectService {
  readonly #access: AccessControl;
  readonly #store: RelayStore;
  readonly #hub: DocHub;
  readonly #bus: EventBus;
  readonly #locks: Locks;
  readonly #fence: AccessFence;

  constructor(options: ObjectServiceOptions) {
    this.#access = options.access;
    this.#store = options.store;
    this.#hub = options.hub;
    this.#bus = options.bus;
    this.#locks = options.locks;
    this.#fence = options.fence ?? NO_FENCE;
  }

  /**
   * Decides `action` for `caller` (audited on `channel`) and throws the channel-neutral denial
   * (see `deniedError`) when it is refused. The server runtime is authoritative: never checked.
   */
  async require(
    caller: Caller,
    action: Action,
    address: Address,
    channel: AuditChannel,
  ): Promise<Decision | null> {
    if (caller.kind === 'runtime') return null;
    const { decision } = await this.#access.check(caller, action, address, { channel });
    if (!decision.allowed) throw deniedError(decision, caller);
    return decision;
  }

  /**
   * Creates the object's metadata on a first write, or applies requested flags (and, for the
   * runtime, an owner), then — when that changed who may see it — publishes `access-changed`
   * and waits until every subscription has been decided again. Call it after the write was
   * allowed, under the object's lock, and before writing any content.
   */
  async prepareWrite(
    caller: Caller,
    address: Address,
    requested: RequestedFlags,
    owner?: string | undefined,
  ): Promise<PreparedWrite> {
    const prepared = await this.#prepareObject(caller, address, requested, owner);
    await this.#narrow(address, prepared);
    return prepared;
  }

  /** The metadata half of {@link prepareWrite}: creates or changes the object, publishes nothing. */
  async #prepareObject(
    caller: Caller,
    address: Address,
    requested: RequestedFlags,
    owner?: string | undefined,
  ): Promise<PreparedWrite> {
    const { before, after } = await this.#access.prepareWrite(caller, address, requested);
    if (owner === undefined || owner === after.owner) return { before, after };
    if (caller.kind !== 'runtime') throw new SyncError('Forbidden', 'only the server runtime sets an owner');
    await this.#store.updateObject(address.name, { owner });
    return { before, after: { ...after, owner } };
  }

  /** Has every subscription decided again when `prepared` changed who may see the object. */
  async #narrow(address: Address, { before, after }: PreparedWrite): Promise<void> {
    const cause = accessChangeOf(before, after);
    if (cause === null) return;
    await this.#bus.publish({ type: 'access-changed', name: address.name, cause });
    // Before the content is written: no relay that missed the change may take it for the old state.
    if (cause !== 'created') await this.#fence.settle();
  }

  /**
   * The first write of a sync subscription: decides `write` (audited on `channel`) and, when
   * allowed, prepares the object under its lock (so that creating it is atomic), then narrows
   * access (see {@link prepareWrite}). A write that leaves an existing object as it is needs
   * neither (see `AccessControl.checkUnchangingWrite`). Resolves with the decision.
   */
  async authorizeWrite(
    caller: Caller,
    address: Address,
    requested: RequestedFlags,
    channel: AuditChannel,
  ): Promise<Decision> {
    // Most first writes are of this kind: a socket joining a document that exists. Across
    // relays the lock costs a connection and two PostgreSQL round trips per socket, and a
    // thousand sockets joining at once queued for it for seconds (bench/results-cluster.md,
    // run I). Whatever changes access meanwhile decides the subscription again, and the
    // registry then decides the write again (SubscriptionRegistry.authorizeWrite).
    const unchanging = await this.#access.checkUnchangingWrite(caller, address, requested, channel);
    if (unchanging !== null) return unchanging;
    return this.#locks.run(address.name, async () => {
      const { decision } = await this.#access.check(caller, 'write', address, { channel });
      if (decision.allowed) await this.prepareWrite(caller, address, requested);
      return decision;
    });
  }

  /** The value at `address` as `caller` may read it (audited); null when absent. Denials throw. */
  async readValue(caller: Caller, address: DocAddress, channel: AuditChannel): Promise<StoredValue | null> {
    // Decided first: to whoever may not read it, a private value is as absent as any other.
    await this.require(caller, 'read', address, channel);
    refuseEncrypted(address);
    const object = await this.#access.loadObject(address);
    if (!object) return null;
    // The version read with the value must cover it: a value read before its last socket edit
    // committed would come with the version before, and a write If-Match that version would be
    // refused (412) although its writer had read the latest value.
    await this.#hub.settled(address.name);
    const value = await this.#hub.read(address.name, readUserValue);
    return this.#valueAt(address, value, object);
  }

  /** Replaces the value at `address`: the whole use case, under the object's lock. */
  writeValue(
    caller: Caller,
    address: DocAddress,
    value: Record<string, unknown>,
    options: ValueWriteOptions,
    channel: AuditChannel,
    origin: ChangeOrigin,
  ): Promise<StoredValue> {
    return this.#locks.run(address.name, async () => {
      await this.require(caller, 'write', address, channel);
      refuseEncrypted(address);
      if (options.ifVersion !== undefined) await this.#checkVersion(caller, address, options.ifVersion);
      const { after } = await this.prepareWrite(
        caller,
        address,
        { read: options.read, write: options.write },
        options.owner,
      );
      await this.#hub.transact(address.name, (doc) => writeUserValue(doc, value), origin);
      return this.#valueAt(address, value, after);
    });
  }

  /**
   * Deletes the object everywhere, the metadata first (from then on every check sees no object),
   * then its content, then publishes `doc-removed` and waits until subscriptions have been
   * decided again. Resolves with whether it existed.
   */
  async remove(caller: Caller, address: Address, channel: AuditChannel): Promise<boolean> {
    const existed = await this.#locks.run(address.name, async () => {
      await this.require(caller, 'delete', address, channel);
      const existed = await this.#store.deleteObject(address.name);
      await this.#hub.remove(address.name);
      await this.#bus.publish({ type: 'doc-removed', name: address.name });
      return existed;
    });
    // Outside the lock: every relay enforces the removal before the caller hears of it.
    await this.#fence.settle();
    return existed;
  }

  /**
   * If-Match. To a caller who may write but not read the object (staff on an owner-read draft),
   * it answers like an absent object: "the version is 0" for any other version, so the object's
   * existence and version stay hidden; If-Match 0 (create) on it fails without a version.
   */
  async #checkVersion(caller: Caller, address: DocAddress, ifVersion: number): Promise<void> {
    const exists = (await this.#store.getObject(address.name)) !== null;
    if (exists && caller.kind !== 'runtime') {
      const { decision } = await this.#access.check(caller, 'read', address, { audit: false });
      if (!decision.allowed) {
        throw new SyncError(
          'PreconditionFailed',
          ifVersion === 0 ? 'the object exists' : `the version is 0, not ${ifVersion}`,
        );
      }
    }
    const current = exists ? await this.#hub.head(address.name) : 0;
    if (current !== ifVersion) {
      throw new SyncError('PreconditionFailed', `the version is ${current}, not ${ifVersion}`);
    }
  }

  async #valueAt(address: Address, value: Record<string, unknown>, meta: ObjectMeta): Promise<StoredValue> {
    const version = await this.#hub.head(address.name);
    return { value, version, owner: meta.owner, read: meta.read, write: meta.write };
  }
}

function refuseEncrypted(address: DocAddress): void {
  if (isEncryptedScope(address.scope)) {
    throw new SyncError('BadRequest', 'end-to-end encrypted: use the client');
  }
}
