/**
 * The one table of error kinds shared by client and relay. Callers branch on `kind`, never
 * on message text; HTTP statuses and WebSocket close codes are derived from it here only.
 */
export const ErrorKind = {
  BadRequest: 'BadRequest',
  Unauthorized: 'Unauthorized',
  Forbidden: 'Forbidden',
  NotFound: 'NotFound',
  Conflict: 'Conflict',
  /**
   * The envelope's key epoch is one the document has moved past: fetch the current key and
   * seal again. (Not a plain Conflict, so a client re-seals only when sealing again can help.)
   */
  KeyRotated: 'KeyRotated',
  /**
   * A user's public keys are not the ones this client pinned when it first saw them: a new
   * device identity, or a relay substituting keys. Nothing is sealed to or accepted from that
   * user until the app calls `client.trust.accept(userId)` (after comparing safety numbers).
   */
  KeyChanged: 'KeyChanged',
  PreconditionFailed: 'PreconditionFailed',
  TooLarge: 'TooLarge',
  RateLimited: 'RateLimited',
  InvalidMessage: 'InvalidMessage',
  Unavailable: 'Unavailable',
  Internal: 'Internal',
} as const;

/** One of the error kinds in {@link ErrorKind}. */
export type ErrorKind = (typeof ErrorKind)[keyof typeof ErrorKind];

const HTTP_STATUS: Record<ErrorKind, number> = {
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  KeyRotated: 409,
  KeyChanged: 409,
  PreconditionFailed: 412,
  TooLarge: 413,
  RateLimited: 429,
  InvalidMessage: 400,
  Unavailable: 503,
  Internal: 500,
};

/** WebSocket close codes live in the 4000–4999 private range: 4000 + the HTTP status. */
const WS_CLOSE_CODE: Record<ErrorKind, number> = {
  BadRequest: 4400,
  Unauthorized: 4401,
  Forbidden: 4403,
  NotFound: 4404,
  Conflict: 4409,
  KeyRotated: 4409,
  KeyChanged: 4409,
  PreconditionFailed: 4412,
  TooLarge: 4413,
  RateLimited: 4429,
  InvalidMessage: 4400,
  Unavailable: 4503,
  Internal: 4500,
};

/** The error every scopesync package throws: a kind from {@link ErrorKind}, a message, and an optional cause. */
export class SyncError extends Error {
  /** What went wrong, as a stable string constant. */
  readonly kind: ErrorKind;

  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SyncError';
    this.kind = kind;
  }
}

/** True when `value` is a {@link SyncError}, optionally of the given kind. */
export function isSyncError(value: unknown, kind?: ErrorKind): value is SyncError {
  return value instanceof SyncError && (kind === undefined || value.kind === kind);
}

/** True when `value` names one of the error kinds. */
export function isErrorKind(value: unknown): value is ErrorKind {
  return typeof value === 'string' && Object.hasOwn(HTTP_STATUS, value);
}

/** The HTTP status a relay answers for an error of this kind. */
export function httpStatusOf(kind: ErrorKind): number {
  return HTTP_STATUS[kind];
}

/**
 * The error kind a client reports for an HTTP status it received (unknown 4xx → BadRequest, 5xx →
 * Unavailable). A status several kinds share maps to the first listed (409 → Conflict): a
 * response body naming the kind is what tells them apart.
 */
export function kindOfHttpStatus(status: number): ErrorKind {
  for (const kind of Object.keys(HTTP_STATUS) as ErrorKind[]) {
    if (HTTP_STATUS[kind] === status && kind !== 'InvalidMessage') return kind;
  }
  return status >= 500 ? 'Unavailable' : 'BadRequest';
}

/** The WebSocket close code a relay uses when it closes a socket for an error of this kind. */
export function wsCloseCodeOf(kind: ErrorKind): number {
  return WS_CLOSE_CODE[kind];
}

/** The error kind behind a WebSocket close code, or undefined for codes outside our range (1000, 1001, 1006…). */
export function kindOfWsCloseCode(code: number): ErrorKind | undefined {
  for (const kind of Object.keys(WS_CLOSE_CODE) as ErrorKind[]) {
    if (WS_CLOSE_CODE[kind] === code) return kind;
  }
  return undefined;
}

/** Throws an Internal SyncError when an invariant does not hold. */
export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new SyncError('Internal', message);
}

/** Marks a branch the type checker proves unreachable; throws if it is reached at run time. */
export function unreachable(value: never): never {
  throw new SyncError('Internal', `unreachable: ${String(value)}`);
}
