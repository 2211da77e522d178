import type { Address, Caller } from '@scopesync/core';
import { removeObject } from '../remove-object.ts';
import { sendEmpty } from './respond.ts';
import { deniedError, type RouteRequest, type RouteServices } from './route.ts';

/**
 * Answers `DELETE` of an object: under its mutex, the caller must be allowed to delete it,
 * then it is removed everywhere (metadata, content, live subscriptions) and the answer is 204.
 */
export async function answerDelete(
  s: RouteServices,
  r: RouteRequest,
  caller: Caller,
  address: Address,
): Promise<void> {
  await s.mutex.run(address.name, async () => {
    const { decision } = await s.access.check(caller, 'delete', address, { channel: 'http' });
    if (!decision.allowed) throw deniedError(decision, caller);
    await removeObject(s, address.name);
    sendEmpty(r.res);
  });
}
