import { isSyncError } from '@scopesync/core';
import { beforeAll, describe, expect, test } from 'vitest';
import { BIP39_ENGLISH } from './bip39-english.ts';
import { generateRootSeed } from './identity.ts';
import { exportRecoveryPhrase, importRecoveryPhrase } from './recovery-phrase.ts';
import { ready } from './sodium.ts';

async function kindOf(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    return isSyncError(error) ? error.kind : `not a SyncError: ${String(error)}`;
  }
  return 'no error';
}

async function messageOf(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return '';
}

const filled = (byte: number): Uint8Array => new Uint8Array(32).fill(byte);

beforeAll(ready);

describe('word list', () => {
  test('is the published BIP-39 English list, byte for byte', async () => {
    const text = new TextEncoder().encode(`${BIP39_ENGLISH.join('\n')}\n`);
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', text));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
    expect(hex).toBe('2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda');
    expect(BIP39_ENGLISH).toHaveLength(2048);
  });
});

describe('recovery phrase', () => {
  // BIP-39's own test vectors for 256-bit entropy: any BIP-39 tool prints the same words.
  test.each([
    [0x00, `${'abandon '.repeat(23)}art`],
    [0x7f, `${'legal winner thank year wave sausage worth useful '.repeat(3)}`.replace(/useful $/, 'title')],
    [
      0x80,
      `${'letter advice cage absurd amount doctor acoustic avoid '.repeat(3)}`.replace(/avoid $/, 'bless'),
    ],
    [0xff, `${'zoo '.repeat(23)}vote`],
  ])('seed of 0x%s bytes matches the BIP-39 vector', async (byte, phrase) => {
    expect(await exportRecoveryPhrase(filled(byte))).toBe(phrase);
    expect(await importRecoveryPhrase(phrase)).toEqual(filled(byte));
  });

  test('round-trips random seeds as 24 list words', async () => {
    for (let i = 0; i < 20; i++) {
      const seed = generateRootSeed();
      const phrase = await exportRecoveryPhrase(seed);
      const words = phrase.split(' ');
      expect(words).toHaveLength(24);
      for (const word of words) expect(BIP39_ENGLISH).toContain(word);
      expect(await importRecoveryPhrase(phrase)).toEqual(seed);
    }
  });

  test('accepts capitals, extra whitespace and words cut to four letters', async () => {
    const seed = filled(0x80);
    const phrase = await exportRecoveryPhrase(seed);
    const sloppy = `  ${phrase
      .split(' ')
      .map((word, i) => (i % 2 === 0 ? word.slice(0, 4).toUpperCase() : word))
      .join(' \n\t ')}  `;
    expect(await importRecoveryPhrase(sloppy)).toEqual(seed);
  });

  test('a wrong word count is a BadRequest that says how many words there were', async () => {
    const phrase = await exportRecoveryPhrase(filled(0x00));
    const short = phrase.split(' ').slice(0, 23).join(' ');
    expect(await kindOf(() => importRecoveryPhrase(short))).toBe('BadRequest');
    expect(await messageOf(() => importRecoveryPhrase(short))).toMatch(/24 words; this one has 23/);
    expect(await kindOf(() => importRecoveryPhrase(''))).toBe('BadRequest');
  });

  test('a word not in the list is a BadRequest naming its position but not the word', async () => {
    const words = (await exportRecoveryPhrase(generateRootSeed())).split(' ');
    words[6] = 'qwertyuiop';
    const run = () => importRecoveryPhrase(words.join(' '));
    expect(await kindOf(run)).toBe('BadRequest');
    expect(await messageOf(run)).toMatch(/word 7 is not in the word list/);
    expect(await messageOf(run)).not.toContain('qwertyuiop');
  });

  test('an ambiguous short prefix is not guessed', async () => {
    const words = (await exportRecoveryPhrase(filled(0x00))).split(' ');
    words[0] = 'aba'; // abandon? (fewer than four letters is never accepted)
    expect(await kindOf(() => importRecoveryPhrase(words.join(' ')))).toBe('BadRequest');
  });

  test('a mistyped (but valid) word or two swapped words fail the checksum', async () => {
    const seed = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
    const words = (await exportRecoveryPhrase(seed)).split(' ');
    const mistyped = [...words];
    mistyped[3] = mistyped[3] === 'abandon' ? 'ability' : 'abandon';
    const run = () => importRecoveryPhrase(mistyped.join(' '));
    expect(await kindOf(run)).toBe('BadRequest');
    expect(await messageOf(run)).toMatch(/checksum does not match/);

    const swapped = [...words];
    [swapped[0], swapped[1]] = [swapped[1] as string, swapped[0] as string];
    expect(swapped).not.toEqual(words);
    expect(await kindOf(() => importRecoveryPhrase(swapped.join(' ')))).toBe('BadRequest');
  });

  test('exporting anything but a 32-byte seed is a BadRequest', async () => {
    expect(await kindOf(() => exportRecoveryPhrase(new Uint8Array(16)))).toBe('BadRequest');
  });
});
