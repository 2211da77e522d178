import { SyncError } from '@scopesync/core';
import * as prng from 'lib0/prng';

/** The environment variable that replays one seed: `SCOPESYNC_SEED=1234 npm test`. */
export const SEED_ENV = 'SCOPESYNC_SEED';

/** The base from which {@link seeds} derives its seeds when no replay seed is set. */
const DEFAULT_BASE_SEED = 0x5eed_c0de;

/**
 * A deterministic random source: two instances made from the same seed produce the same
 * sequence, so a failing randomised test can be replayed exactly.
 */
export interface SeededRandom {
  /** The seed this source was made from; print it to replay a failure. */
  readonly seed: number;
  /** The underlying lib0 generator, for lib0's `prng.*` helpers. */
  readonly prng: prng.PRNG;
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [min, max], both inclusive. */
  int(min: number, max: number): number;
  /** True or false with equal chance. */
  bool(): boolean;
  /** `length` random bytes in a fresh buffer. */
  bytes(length: number): Uint8Array;
  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
  /** A lowercase ASCII word of `minLength`–`maxLength` letters. */
  word(minLength?: number, maxLength?: number): string;
  /** A shuffled copy of `items`. */
  shuffle<T>(items: readonly T[]): T[];
}

/** A {@link SeededRandom} over lib0's default PRNG, made from a uint32 seed. */
export function seededRandom(seed: number): SeededRandom {
  checkSeed(seed, 'seed');
  const gen = prng.create(seed);
  return {
    seed,
    prng: gen,
    next: () => gen.next(),
    int: (min, max) => prng.int53(gen, min, max),
    bool: () => prng.bool(gen),
    bytes: (length) => prng.uint8Array(gen, length),
    pick: (items) => {
      if (items.length === 0) throw new SyncError('BadRequest', 'cannot pick from an empty array');
      return items[prng.int53(gen, 0, items.length - 1)] as (typeof items)[number];
    },
    word: (minLength = 1, maxLength = 8) => {
      const length = prng.int53(gen, minLength, maxLength);
      let out = '';
      for (let i = 0; i < length; i++) out += String.fromCharCode(97 + prng.int53(gen, 0, 25));
      return out;
    },
    shuffle: (items) => {
      const out = items.slice();
      for (let i = out.length - 1; i > 0; i--) {
        const j = prng.int53(gen, 0, i);
        [out[i], out[j]] = [out[j] as (typeof out)[number], out[i] as (typeof out)[number]];
      }
      return out;
    },
  };
}

/**
 * The seeds a randomised test should run with: `count` seeds derived deterministically from
 * `base`, or only the seed in `SCOPESYNC_SEED` when it is set (to replay one failure).
 */
export function seeds(count: number, base: number = DEFAULT_BASE_SEED): number[] {
  const replay = replaySeed();
  if (replay !== undefined) return [replay];
  checkSeed(base, 'base seed');
  const gen = prng.create(base);
  return Array.from({ length: count }, () => prng.uint32(gen, 0, 0xffff_ffff));
}

/**
 * The seed in `SCOPESYNC_SEED`, or undefined when it is not set. Throws BadRequest when it
 * is set to something other than a uint32 (decimal or `0x` hex).
 */
export function replaySeed(): number | undefined {
  const raw = readEnv(SEED_ENV)?.trim();
  if (raw === undefined || raw === '') return undefined;
  const seed = /^(0x[0-9a-f]+|[0-9]+)$/i.test(raw) ? Number(raw) : Number.NaN;
  checkSeed(seed, SEED_ENV);
  return seed;
}

/**
 * Runs `body` with a {@link SeededRandom} made from `seed`. When the body fails, the seed is
 * printed and the error is rethrown with `[name, seed N; replay with SCOPESYNC_SEED=N]`
 * prepended to its message (the same error object, so assertion diffs survive).
 */
export async function withSeed<T>(
  name: string,
  seed: number,
  body: (random: SeededRandom) => T | Promise<T>,
): Promise<T> {
  const random = seededRandom(seed);
  try {
    return await body(random);
  } catch (error) {
    const note = `[${name}, seed ${seed}; replay with ${SEED_ENV}=${seed}]`;
    printError(`${note} failed`);
    throw annotate(error, note);
  }
}

function annotate(error: unknown, note: string): Error {
  if (error instanceof Error) {
    try {
      error.message = `${note} ${error.message}`;
      return error;
    } catch {
      // A frozen error: wrap it instead.
    }
  }
  return new Error(`${note} ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

function checkSeed(seed: number, what: string): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new SyncError('BadRequest', `${what} must be an integer in [0, 2^32): got ${String(seed)}`);
  }
}

/** Reads an environment variable without needing Node types: undefined outside Node. */
function readEnv(name: string): string | undefined {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return env?.[name];
}

function printError(message: string): void {
  (globalThis as { console?: { error(...args: unknown[]): void } }).console?.error(message);
}
