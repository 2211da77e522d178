import { type ErrorKind, isSyncError } from '@scopesync/core';

/** What each kind of failure means to a person, with `{action}` standing for what they tried. */
const SENTENCES: Partial<Record<ErrorKind, string>> = {
  Forbidden: 'You are not allowed to {action}.',
  Unauthorized: 'The relay did not accept this device’s key, so you cannot {action}.',
  NotFound: 'Could not {action}: it does not exist, or you cannot see it.',
  BadRequest: 'Could not {action}: the input is not valid.',
  Conflict: 'Could not {action}: someone changed it at the same time. Try again.',
  PreconditionFailed: 'Could not {action}: someone changed it at the same time. Try again.',
  TooLarge: 'Could not {action}: it is too large.',
  RateLimited: 'Could not {action} right now: too many requests. Wait a moment and try again.',
  Unavailable: 'Could not {action}: the relay cannot be reached right now.',
};

/**
 * Turns any error into one or two sentences a person can act on. Branches on the error's
 * `kind` (never on its text); the relay's own explanation follows as detail, because it
 * often says exactly which rule applied ("USER_PRIVATE is readable by its owner only").
 */
export function describeError(error: unknown, action = 'do that'): string {
  if (isSyncError(error)) {
    const sentence = (SENTENCES[error.kind] ?? 'Could not {action}.').replace('{action}', action);
    const detail = error.message.trim();
    return detail && !sentence.includes(detail)
      ? `${sentence} ${capitalize(detail)}${endStop(detail)}`
      : sentence;
  }
  if (error instanceof Error && error.message) return `Could not ${action}: ${error.message}`;
  return `Could not ${action}.`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function endStop(text: string): string {
  return /[.!?]$/.test(text) ? '' : '.';
}
