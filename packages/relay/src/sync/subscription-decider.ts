import type { Action, Address, Caller } from '@scopesync/core';
import { couldCreate } from '../services/existence.ts';
import { activeOn, creating, type Decided, type DecideOptions, refusal } from './subscription-decision.ts';
import type { CheckedAccess, SyncAuthority } from './sync-authority.ts';

const NO_AUDIT = { audit: false } as const;

/**
 * What a caller may do with a document now, asked of the {@link SyncAuthority} (core's
 * `decide()` over the store): the one decision behind a subscription's admission, its
 * re-decisions and its write state. It holds no state; `SubscriptionRegistry` applies its answers.
 */
export class SubscriptionDecider {
  readonly #authority: SyncAuthority;

  constructor(authority: SyncAuthority) {
    this.#authority = authority;
  }

  /**
   * A check that is not an attempt (not audited), on the object `loaded` read when given: in this
   * turn when the authority can answer it so (`probeNow`), else through `check`.
   */
  probe(
    caller: Caller,
    action: Action,
    address: Address,
    loaded?: CheckedAccess,
  ): CheckedAccess | Promise<CheckedAccess> {
    return (
      this.#authority.probeNow?.(caller, action, address, loaded) ??
      this.#authority.check(
        caller,
        action,
        address,
        loaded === undefined ? NO_AUDIT : { audit: false, loaded },
      )
    );
  }

  /**
   * What `caller` may do with `address` now. `audit`: record the start of a read (and a refused
   * attempt) as the engine asks; `readAudited`: the read was recorded already.
   */
  async decide(
    caller: Caller,
    address: Address,
    options: DecideOptions,
    loaded?: CheckedAccess,
  ): Promise<Decided> {
    // Probes answered in this turn are not awaited: no promise turn per check on a synchronous
    // store. `loaded`: the object as read for every subscription of the document, decided on for
    // this caller.
    const probed = this.probe(caller, 'read', address, loaded);
    const read = probed instanceof Promise ? await probed : probed;
    const now = this.decideNow(read, caller, address, options);
    if (now !== undefined) return now;
    // The checks after the first decide on the object it read: one store read per decision.
    const audited = { loaded: read };
    if (read.decision.allowed) {
      if (!options.readAudited && read.decision.audit) {
        const real = await this.#authority.check(caller, 'read', address, audited);
        if (!real.decision.allowed) return refusal(real);
      }
      const write = await this.probe(caller, 'write', address, read);
      return activeOn(write, true, read.encrypted);
    }
    // Absent: who may create it may start syncing it (an empty document reveals nothing). Hidden
    // from a caller who could create it were it absent: the same answer (posing), so that
    // nothing tells the two apart before the caller tries to create it.
    const posing = read.object !== null && read.decision.hideExistence && couldCreate(caller, address);
    if (read.object === null || posing) {
      const create = posing || (await this.probe(caller, 'write', address, read)).decision.allowed;
      if (create) {
        // The refused read of a hidden object is recorded for its owner (the caller cannot see that).
        if (posing && options.audit) await this.#authority.check(caller, 'read', address, audited);
        return creating(posing);
      }
    }
    // Record the refused attempt once, when it is made.
    return refusal(options.audit ? await this.#authority.check(caller, 'read', address, audited) : read);
  }

  /**
   * The decision on `read` when it needs no store read and nothing recorded: a readable object
   * whose read is not audited (or was), or an absent one the caller may create, with the write
   * probe answered in this turn; undefined otherwise (then {@link decide} goes on).
   */
  decideNow(
    read: CheckedAccess,
    caller: Caller,
    address: Address,
    options: DecideOptions,
  ): Decided | undefined {
    if (read.decision.allowed) {
      if (!options.readAudited && read.decision.audit) return undefined;
      const write = this.#authority.probeNow?.(caller, 'write', address, read);
      return write === undefined ? undefined : activeOn(write, true, read.encrypted);
    }
    // An existing object it may not read: hidden, posing or refused, decided by `decide`.
    if (read.object !== null) return undefined;
    const write = this.#authority.probeNow?.(caller, 'write', address, read);
    if (write === undefined) return undefined;
    if (write.decision.allowed) return creating(false);
    return options.audit ? undefined : refusal(read);
  }
}
