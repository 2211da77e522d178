import type { Address, Caller } from '@scopesync/core';
import type { RouteServices } from './route.ts';

/**
 * Refuses a write the caller may not make before its body is read, so a refused upload costs
 * the relay no bytes: a probe (not audited) first, and only when it denies, the audited decision
 * that throws the usual denial. A body never turns a denial into a permission (flags in it can
 * only narrow), so nothing is refused here that the full write would allow.
 */
export async function refuseBeforeBody(s: RouteServices, caller: Caller, address: Address): Promise<void> {
  const { decision } = await s.access.check(caller, 'write', address, { audit: false });
  if (!decision.allowed) await s.objects.require(caller, 'write', address, 'http');
}
