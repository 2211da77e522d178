import { isSyncError } from '@scopesync/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { replaySeed, SEED_ENV, seededRandom, seeds, withSeed } from './seeded-random.ts';

/** `console` through globalThis: this package compiles without DOM or Node types. */
const output = (globalThis as unknown as { console: { error(...args: unknown[]): void } }).console;

afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

function draw(seed: number): unknown[] {
  const r = seededRandom(seed);
  return [
    r.next(),
    r.int(-5, 5),
    r.bool(),
    [...r.bytes(8)],
    r.pick(['a', 'b', 'c']),
    r.word(),
    r.shuffle([1, 2, 3, 4]),
  ];
}

describe('seededRandom', () => {
  it('replays the same sequence from the same seed and another from another seed', () => {
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
  });

  it('keeps ints within their inclusive bounds and shuffles without losing elements', () => {
    const r = seededRandom(7);
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) seen.add(r.int(1, 3));
    expect([...seen].sort()).toEqual([1, 2, 3]);
    expect(r.shuffle([1, 2, 3, 4, 5]).sort()).toEqual([1, 2, 3, 4, 5]);
  });

  it('rejects seeds outside uint32 and picks from an empty array', () => {
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN]) {
      expect(() => seededRandom(bad)).toThrow(/seed/);
    }
    expect(() => seededRandom(1).pick([])).toThrow(/empty/);
  });
});

describe('seeds', () => {
  it('derives the same distinct seeds on every run', () => {
    vi.stubEnv(SEED_ENV, '');
    const a = seeds(5);
    expect(a).toHaveLength(5);
    expect(new Set(a).size).toBe(5);
    expect(seeds(5)).toEqual(a);
    expect(seeds(5, 1)).not.toEqual(a);
  });

  it('replays only the seed in SCOPESYNC_SEED when it is set', () => {
    vi.stubEnv(SEED_ENV, '1234');
    expect(seeds(10)).toEqual([1234]);
    vi.stubEnv(SEED_ENV, '0xff');
    expect(replaySeed()).toBe(255);
  });

  it('refuses a malformed SCOPESYNC_SEED rather than silently ignoring it', () => {
    vi.stubEnv(SEED_ENV, 'twelve');
    let caught: unknown;
    try {
      seeds(3);
    } catch (error) {
      caught = error;
    }
    expect(isSyncError(caught, 'BadRequest')).toBe(true);
  });
});

describe('withSeed', () => {
  it('passes a random source made from the seed and returns the body’s result', async () => {
    const result = await withSeed('draws', 99, (random) => {
      expect(random.seed).toBe(99);
      return random.next();
    });
    expect(result).toBe(seededRandom(99).next());
  });

  it('prints the seed and puts it in the rethrown error’s message', async () => {
    const printed = vi.spyOn(output, 'error').mockImplementation(() => {});
    const original = new Error('boom');
    let caught: unknown;
    try {
      await withSeed('explodes', 31337, async () => {
        throw original;
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBe(original);
    expect(original.message).toBe('[explodes, seed 31337; replay with SCOPESYNC_SEED=31337] boom');
    expect(printed).toHaveBeenCalledWith(expect.stringContaining('SCOPESYNC_SEED=31337'));
  });

  it('wraps a thrown non-error value, keeping it as the cause', async () => {
    vi.spyOn(output, 'error').mockImplementation(() => {});
    await expect(
      withSeed('throws a string', 5, () => {
        throw 'not an error';
      }),
    ).rejects.toMatchObject({ message: expect.stringContaining('seed 5'), cause: 'not an error' });
  });
});
