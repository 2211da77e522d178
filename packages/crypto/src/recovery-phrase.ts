import { SyncError } from '@scopesync/core';
import { BIP39_ENGLISH } from './bip39-english.ts';
import { checkLength } from './bytes.ts';
import { subtleCrypto } from './subtle.ts';

/** Words in a recovery phrase: 256 bits of seed plus an 8-bit checksum, 11 bits a word. */
export const RECOVERY_PHRASE_WORDS = 24;

const SEED_BYTES = 32;
const INDEX = new Map(BIP39_ENGLISH.map((word, index) => [word, index]));

async function checksumByte(seed: Uint8Array): Promise<number> {
  // BIP-39: the checksum is the first (256 / 32 =) 8 bits of SHA-256(entropy). libsodium's
  // standard build has no SHA-256, WebCrypto does.
  const digest = new Uint8Array(await subtleCrypto().digest('SHA-256', seed as Uint8Array<ArrayBuffer>));
  return digest[0] as number;
}

/**
 * Encodes a 32-byte root seed as 24 words of the BIP-39 English list (the seed is the BIP-39
 * entropy; we do not use BIP-39's PBKDF2 seed stretching). Write it down: it is the only way to
 * bring the identity to a new device or back after losing every device.
 */
export async function exportRecoveryPhrase(rootSeed: Uint8Array): Promise<string> {
  checkLength(rootSeed, SEED_BYTES, 'root seed');
  const bits = new Uint8Array(SEED_BYTES + 1);
  bits.set(rootSeed);
  bits[SEED_BYTES] = await checksumByte(rootSeed);
  const words: string[] = [];
  for (let w = 0; w < RECOVERY_PHRASE_WORDS; w++) {
    let index = 0;
    for (let b = w * 11; b < w * 11 + 11; b++) {
      index = (index << 1) | (((bits[b >> 3] as number) >> (7 - (b & 7))) & 1);
    }
    words.push(BIP39_ENGLISH[index] as string);
  }
  return words.join(' ');
}

function wordIndex(typed: string, position: number): number {
  const exact = INDEX.get(typed);
  if (exact !== undefined) return exact;
  // BIP-39 words are unique in their first four letters, and people often write only those down.
  if (typed.length >= 4) {
    const matches = BIP39_ENGLISH.filter((word) => word.startsWith(typed));
    if (matches.length === 1) return INDEX.get(matches[0] as string) as number;
  }
  // Name the position, never the word: messages end up in logs, and the phrase is a secret.
  throw new SyncError('BadRequest', `recovery phrase word ${position} is not in the word list`);
}

/**
 * Decodes a recovery phrase back into the 32-byte root seed. Case, extra spaces and words cut to
 * their first four (or more) letters are accepted. A wrong word count, a word not in the list, or a
 * checksum that does not match (a mistyped or swapped word) is a BadRequest that names the problem
 * without repeating the phrase.
 */
export async function importRecoveryPhrase(phrase: string): Promise<Uint8Array> {
  if (typeof phrase !== 'string') throw new SyncError('BadRequest', 'recovery phrase must be a string');
  const typed = phrase.normalize('NFKD').trim().toLowerCase().split(/\s+/).filter(Boolean);
  if (typed.length !== RECOVERY_PHRASE_WORDS) {
    throw new SyncError(
      'BadRequest',
      `a recovery phrase has ${RECOVERY_PHRASE_WORDS} words; this one has ${typed.length}`,
    );
  }
  const bits = new Uint8Array(SEED_BYTES + 1);
  typed.forEach((word, w) => {
    const index = wordIndex(word, w + 1);
    for (let i = 0; i < 11; i++) {
      if ((index >> (10 - i)) & 1) {
        const b = w * 11 + i;
        bits[b >> 3] = (bits[b >> 3] as number) | (1 << (7 - (b & 7)));
      }
    }
  });
  const seed = bits.slice(0, SEED_BYTES);
  if ((await checksumByte(seed)) !== bits[SEED_BYTES]) {
    throw new SyncError(
      'BadRequest',
      'recovery phrase checksum does not match: a word is mistyped, missing or out of order',
    );
  }
  return seed;
}
