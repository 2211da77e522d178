import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type Action,
  type Address,
  type Caller,
  type Decision,
  decide,
  flagsForWrite,
  Level,
  type ObjectMeta,
  ownerForCreate,
  parseUserId,
  type ShareLevel,
  SyncError,
  type UserId,
} from '@scopesync/core';
import type { DocHub } from '../documents/doc-hub.ts';
import type { LocalEventBus } from '../events/local-event-bus.ts';
import { accessChangeOf } from '../services/access-narrowing.ts';
import type { CheckedAccess, CheckOptions, RequestedFlags, SyncAuthority } from './sync-authority.ts';
import type { SyncServer } from './sync-server.ts';

// The SyncAuthority and the listener of the sync server's tests (not part of the relay).

/** Test users, with an API key each (`alice-key`, …). */
export const ALICE = parseUserId('user_aaaaaaaaaaaaaaaa');
export const BOB = parseUserId('user_bbbbbbbbbbbbbbbb');
export const CAROL = parseUserId('user_cccccccccccccccc');
/** A user caller at the default level. */
const user = (userId: UserId): Caller => ({ kind: 'user', userId, level: Level.User });

/** A SyncAuthority over core's decide() with metadata in a map, recording audited checks. */
export class TestAuthority implements SyncAuthority {
  readonly keys = new Map<string, Caller>([
    ['alice-key', user(ALICE)],
    ['bob-key', user(BOB)],
    ['carol-key', user(CAROL)],
  ]);
  readonly objects = new Map<string, ObjectMeta>();
  readonly audits: Array<{ caller: string; action: Action; name: string; allowed: boolean }> = [];
  failOn: string | null = null;
  /** Checks that read the metadata (not handed the object an earlier check read, `loaded`). */
  reads = 0;
  /** Where a first write that changed who may read an object is announced (as the relay's service does). */
  bus: LocalEventBus | null = null;

  async authenticate(request: IncomingMessage): Promise<Caller> {
    const key = new URL(request.url ?? '/', 'http://x').searchParams.get('key');
    if (key === null) return { kind: 'guest' };
    const caller = this.keys.get(key);
    if (!caller) throw new SyncError('Unauthorized', 'unknown API key');
    return caller;
  }

  async check(
    caller: Caller,
    action: Action,
    address: Address,
    options?: CheckOptions,
  ): Promise<CheckedAccess> {
    if (this.failOn === address.name) throw new Error('metadata store exploded');
    if (!options?.loaded) this.reads += 1;
    const object = options?.loaded ? options.loaded.object : (this.objects.get(address.name) ?? null);
    const decision = decide({ caller, action, address, object });
    if (options?.audit !== false && decision.audit) {
      const who = caller.kind === 'user' ? caller.userId : caller.kind;
      this.audits.push({ caller: who, action, name: address.name, allowed: decision.allowed });
    }
    return { decision, object };
  }

  async prepareWrite(caller: Caller, address: Address, requested?: RequestedFlags): Promise<ObjectMeta> {
    const existing = this.objects.get(address.name) ?? null;
    const flags = flagsForWrite(caller, address, existing, requested ?? {});
    const meta: ObjectMeta = {
      ...existing,
      owner: existing?.owner ?? ownerForCreate(caller, address),
      ...flags,
    };
    this.objects.set(address.name, meta);
    return meta;
  }

  async authorizeWrite(caller: Caller, address: Address, requested: RequestedFlags): Promise<Decision> {
    const { decision, object } = await this.check(caller, 'write', address);
    if (!decision.allowed) return decision;
    const after = await this.prepareWrite(caller, address, requested);
    const cause = accessChangeOf(object, after);
    if (cause !== null) await this.bus?.publish({ type: 'access-changed', name: address.name, cause });
    return decision;
  }

  share(blob: string, userId: UserId, level: ShareLevel | null): void {
    const meta = this.objects.get(blob);
    if (!meta) throw new Error('no blob');
    const shares = new Map(meta.shares ?? []);
    if (level === null) shares.delete(userId);
    else shares.set(userId, level);
    this.objects.set(blob, { ...meta, shares });
  }
}

/**
 * Serves `server`'s upgrades on a loopback port; `upgrade` replaces the plain hand-over (a test
 * that watches it). `close` ends the server, the hub and the listener.
 */
export async function serveSync(
  server: SyncServer,
  hub: DocHub,
  upgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void = (request, socket, head) =>
    server.handleUpgrade(request, socket, head),
): Promise<{ url: string; close(): Promise<void> }> {
  const http = createServer((_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  http.on('upgrade', upgrade);
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    close: async () => {
      await server.close();
      await hub.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
