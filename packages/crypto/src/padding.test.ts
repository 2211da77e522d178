import { describe, expect, it } from 'vitest';
import { MIN_PADDED_BYTES, paddedLength, padPlaintext, unpadPlaintext } from './padding.ts';

describe('envelope padding', () => {
  it('round-trips any plaintext, zeros and 0x80 at its end included', () => {
    for (const plain of [
      [],
      [0],
      [0x80],
      [1, 0, 0],
      [0x80, 0],
      Array.from({ length: 300 }, (_, i) => i % 256),
    ]) {
      const bytes = new Uint8Array(plain);
      expect(unpadPlaintext(padPlaintext(bytes))).toEqual(bytes);
    }
    expect(() => unpadPlaintext(new Uint8Array(64))).toThrowError(/padding/);
    expect(() => unpadPlaintext(new Uint8Array([1, 2, 3]))).toThrowError(/padding/);
  });

  it('hides small sizes in one bucket and larger ones within ~12%', () => {
    // Every keystroke-sized edit looks the same.
    const small = new Set([1, 5, 20, 40, 63].map((n) => padPlaintext(new Uint8Array(n)).length));
    expect([...small]).toEqual([MIN_PADDED_BYTES]);
    let buckets = 0;
    let previous = 0;
    const wrong: number[] = [];
    for (let n = 65; n <= 1 << 18; n++) {
      const padded = paddedLength(n);
      if (padded < n || padded / n > 1.125) wrong.push(n);
      if (padded !== previous) buckets++;
      previous = padded;
    }
    expect(wrong).toEqual([]);
    // A quarter of a million distinct lengths fall into a few hundred buckets.
    expect(buckets).toBeLessThan(600);
  });
});
