/**
 * Bounds a reader enforces on untrusted input. They are the receiver's policy: writers do
 * not check them, so a sender must keep its own strings and payloads within the peer's limits.
 */
export interface WireLimits {
  /** Largest whole frame, and so the largest update, envelope or snapshot, in bytes. */
  readonly maxFrameBytes: number;
  /** Largest string (doc name, reason, error kind, error message), in UTF-8 bytes. */
  readonly maxStringBytes: number;
  /** Most entries one `enc-entries` message may carry. */
  readonly maxEntries: number;
}

/** The limits readers apply when none are given: 16 MiB frames, 4 KiB strings, 100,000 entries. */
export const DEFAULT_WIRE_LIMITS: WireLimits = Object.freeze({
  maxFrameBytes: 16 * 1024 * 1024,
  maxStringBytes: 4 * 1024,
  maxEntries: 100_000,
});
