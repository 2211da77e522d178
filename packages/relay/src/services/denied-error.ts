import { type Caller, type Decision, SyncError } from '@scopesync/core';

/**
 * The error for a denied decision, the same on every channel: NotFound when the decision must
 * hide whether the object exists (with a message that does not say why), Unauthorized for a
 * guest (a key might help), else Forbidden with the engine's reason.
 */
export function deniedError(decision: Decision, caller: Caller): SyncError {
  if (decision.hideExistence) return new SyncError('NotFound', 'not found');
  if (caller.kind === 'guest')
    return new SyncError('Unauthorized', `an API key is required: ${decision.reason}`);
  return new SyncError('Forbidden', decision.reason);
}
