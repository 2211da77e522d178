/** How reconnection delays grow. */
export interface BackoffOptions {
  /** The first delay, in milliseconds. */
  readonly initialMs: number;
  /** The longest delay, in milliseconds. */
  readonly maxMs: number;
  /** Growth per failed attempt. */
  readonly factor: number;
}

/** Reconnection defaults: 250 ms, doubling, at most 30 s. */
export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 250, maxMs: 30_000, factor: 2 });

/**
 * The delay before reconnect attempt `attempt` (0-based): exponential growth capped at
 * `maxMs`, with "full jitter" (a uniform pick in [cap/2, cap]) so that many clients dropped
 * by one relay restart do not all come back in the same instant.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
  random = Math.random,
): number {
  const cap = Math.min(options.maxMs, options.initialMs * options.factor ** Math.max(0, attempt));
  return Math.round(cap / 2 + random() * (cap / 2));
}
