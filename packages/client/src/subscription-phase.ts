import { assert, type SyncError } from '@scopesync/core';

/**
 * Where a {@link DocHandle}'s subscription on the current socket stands. The access the relay
 * last reported is remembered apart (across sessions); this is only what the current socket
 * has said.
 *
 * - `idle`: not subscribed (offline, or not loaded yet);
 * - `subscribing`: subscribe sent, no answer yet (also after a re-subscribe with new flags);
 * - `waiting`: the relay answered `waiting`: the doc is absent or hidden, nothing flows yet;
 * - `active`: granted `access`; the doc syncs (and may be written when `read-write`); `synced`
 *   once it caught up with the relay on this subscription;
 * - `ended`: the relay ended the subscription with an error; a new socket subscribes again;
 * - `closed`: the handle stopped for good (released, revoked, the client closed).
 */
export type SubscriptionPhase =
  | { readonly kind: 'idle' }
  | { readonly kind: 'subscribing' }
  | { readonly kind: 'waiting' }
  | { readonly kind: 'active'; readonly access: 'read' | 'read-write'; readonly synced: boolean }
  | { readonly kind: 'ended'; readonly reason: SyncError }
  | { readonly kind: 'closed'; readonly reason: string };

const NEXT: { readonly [K in SubscriptionPhase['kind']]: readonly SubscriptionPhase['kind'][] } = {
  idle: ['subscribing', 'closed'],
  subscribing: ['subscribing', 'waiting', 'active', 'ended', 'idle', 'closed'],
  waiting: ['subscribing', 'waiting', 'active', 'ended', 'idle', 'closed'],
  active: ['subscribing', 'active', 'ended', 'idle', 'closed'],
  ended: ['subscribing', 'idle', 'closed'],
  closed: [],
};

/** The phase after `from` moves to `to`; throws Internal for a move the table does not allow. */
export function transition(from: SubscriptionPhase, to: SubscriptionPhase): SubscriptionPhase {
  assert(NEXT[from.kind].includes(to.kind), `a subscription cannot go from ${from.kind} to ${to.kind}`);
  return to;
}

/** True while a subscription exists on the current socket (answered or not). */
export function isSubscribed(phase: SubscriptionPhase): boolean {
  return phase.kind === 'subscribing' || phase.kind === 'waiting' || phase.kind === 'active';
}
