import type { ActiveState, WriteState } from './subscription.ts';
import type { CheckedAccess } from './sync-authority.ts';

// What SubscriptionRegistry's decisions come to: the states a decision gives a subscription,
// built from core's checks (the registry asks them; this only shapes their answers).

/** What a decision records: the start of a read, a refused attempt. */
export interface DecideOptions {
  readonly audit: boolean;
  /** The read was recorded already. */
  readonly readAudited: boolean;
}

/** An admission records the read it starts and a refused attempt. */
export const ADMISSION: DecideOptions = Object.freeze({ audit: true, readAudited: false });

/** What a caller may do with a document now. */
export type Decided =
  | { readonly kind: 'active'; readonly state: ActiveState; readonly encrypted: boolean | undefined }
  | { readonly kind: 'hidden'; readonly reason: string }
  | { readonly kind: 'refused'; readonly reason: string };

/** A write state without data, shared by every subscription (a state is never changed in place). */
const WRITE_UNCHECKED: WriteState = Object.freeze({ status: 'unchecked' });

/** Syncing an existing object it may read, read-write when `write` allows. */
export function activeOn(
  write: CheckedAccess,
  readAudited: boolean,
  encrypted: boolean | undefined,
): Decided {
  const state: ActiveState = {
    phase: 'active',
    access: write.decision.allowed ? 'read-write' : 'read',
    exists: true,
    posing: false,
    readAudited,
    write: write.decision.allowed
      ? WRITE_UNCHECKED
      : { status: 'denied', reason: write.decision.reason, audited: false },
  };
  return { kind: 'active', state, encrypted };
}

/** Syncing an object it may create that does not exist (or, `posing`, is hidden from it). */
export function creating(posing: boolean): Decided {
  const state: ActiveState = {
    phase: 'active',
    access: 'read-write',
    exists: false,
    posing,
    readAudited: false,
    write: WRITE_UNCHECKED,
  };
  return { kind: 'active', state, encrypted: undefined };
}

/** A refused read: hidden when the engine hides whether the object exists, refused otherwise. */
export function refusal(checked: CheckedAccess): { kind: 'hidden' | 'refused'; reason: string } {
  return { kind: checked.decision.hideExistence ? 'hidden' : 'refused', reason: checked.decision.reason };
}
