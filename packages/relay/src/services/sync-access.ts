import type { IncomingMessage } from 'node:http';
import type { Action, Address, Caller, Decision } from '@scopesync/core';
import type { AccessControl, Authenticated } from '../access-control.ts';
import type { CheckedAccess, CheckOptions, RequestedFlags, SyncAuthority } from '../sync/sync-authority.ts';
import type { ObjectService } from './object-service.ts';

/**
 * The relay's {@link SyncAuthority}: authentication and checks from the one access path, first
 * writes through the same write use case as HTTP and the runtime. A thin adapter, no rules.
 */
export class SyncAccess implements SyncAuthority {
  readonly #access: AccessControl;
  readonly #objects: ObjectService;

  constructor(access: AccessControl, objects: ObjectService) {
    this.#access = access;
    this.#objects = objects;
  }

  authenticate(request: IncomingMessage): Promise<Caller> {
    return this.#access.authenticate(request);
  }

  authenticateNow(request: IncomingMessage): Authenticated | undefined {
    return this.#access.authenticateNow(request);
  }

  credentialOf(request: IncomingMessage): string | null {
    return this.#access.credentialOf(request);
  }

  reauthenticate(credential: string): Promise<Caller | null> {
    return this.#access.reauthenticate(credential);
  }

  expiryOf(credential: string): number | null {
    return this.#access.expiryOf(credential);
  }

  check(caller: Caller, action: Action, address: Address, options?: CheckOptions): Promise<CheckedAccess> {
    return this.#access.check(caller, action, address, { ...options, channel: 'ws' });
  }

  probeNow(
    caller: Caller,
    action: Action,
    address: Address,
    loaded?: CheckedAccess,
  ): CheckedAccess | undefined {
    return this.#access.probeNow(caller, action, address, loaded);
  }

  authorizeWrite(caller: Caller, address: Address, requested: RequestedFlags): Promise<Decision> {
    return this.#objects.authorizeWrite(caller, address, requested, 'ws');
  }
}
