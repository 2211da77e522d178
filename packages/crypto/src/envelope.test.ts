import { isSyncError } from '@scopesync/core';
import { beforeAll, describe, expect, test } from 'vitest';
import { createDocKey, type DocKey, rotateDocKey } from './doc-key.ts';
import { docNameHash } from './doc-name-hash.ts';
import {
  ENVELOPE_OVERHEAD,
  type OpenEnvelopeOptions,
  openEnvelope,
  readEnvelopeHeader,
  sealEnvelope,
  verifyEnvelopeSignature,
} from './envelope.ts';
import { deriveIdentity, generateRootSeed, type Identity } from './identity.ts';
import { paddedLength } from './padding.ts';
import { ready } from './sodium.ts';

function kindOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return isSyncError(error) ? error.kind : `not a SyncError: ${String(error)}`;
  }
  return 'no error';
}

const USER = 'user_0123456789abcdef';
const DOC = `USER_PRIVATE/${USER}/notes`;
const OTHER_DOC = `USER_PRIVATE/${USER}/diary`;
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

let owner: Identity;
let stranger: Identity;
let key: DocKey;

beforeAll(async () => {
  await ready();
  owner = deriveIdentity(generateRootSeed());
  stranger = deriveIdentity(generateRootSeed());
  key = createDocKey();
});

const keysOf =
  (...held: DocKey[]) =>
  (keyId: string, epoch: number): DocKey | undefined =>
    held.find((k) => k.id === keyId && k.epoch === epoch);

function reader(overrides: Partial<OpenEnvelopeOptions> = {}): OpenEnvelopeOptions {
  return {
    docName: DOC,
    keys: keysOf(key),
    isAuthorAllowed: (authorKey) => authorKey.every((b, i) => b === owner.signPublicKey[i]),
    ...overrides,
  };
}

const seal = (
  plaintext: Uint8Array,
  extra: { userId?: string; kind?: 'update' | 'snapshot'; with?: DocKey } = {},
) =>
  sealEnvelope({
    docName: DOC,
    key: extra.with ?? key,
    author: { ...owner, ...(extra.userId === undefined ? {} : { userId: extra.userId }) },
    plaintext,
    ...(extra.kind === undefined ? {} : { kind: extra.kind }),
  });

describe('envelopes', () => {
  test('an update round-trips and says who wrote it under which key', () => {
    const opened = openEnvelope(seal(bytes('hello')), reader());
    expect(new TextDecoder().decode(opened.plaintext)).toBe('hello');
    expect(opened).toMatchObject({ kind: 'update', keyId: key.id, epoch: key.epoch });
    expect(opened.authorKey).toEqual(owner.signPublicKey);
    expect(opened.userId).toBeUndefined();
  });

  test('a snapshot with a user id round-trips, and so does an empty plaintext', () => {
    const opened = openEnvelope(seal(bytes('state'), { kind: 'snapshot', userId: USER }), reader());
    expect(opened.kind).toBe('snapshot');
    expect(opened.userId).toBe(USER);
    expect(openEnvelope(seal(new Uint8Array(0)), reader()).plaintext).toHaveLength(0);
  });

  test('the same plaintext never seals to the same bytes (random nonce)', () => {
    const a = seal(bytes('same'));
    const b = seal(bytes('same'));
    expect(a).not.toEqual(b);
    expect(a.subarray(0, 91)).toEqual(b.subarray(0, 91));
  });

  test('the header is readable without keys, and carries no plaintext', () => {
    const envelope = seal(bytes('secret words'), { userId: USER, kind: 'snapshot' });
    const header = readEnvelopeHeader(envelope);
    expect(header).toMatchObject({
      version: 2,
      kind: 'snapshot',
      epoch: key.epoch,
      keyId: key.id,
      userId: USER,
    });
    expect(header.authorKey).toEqual(owner.signPublicKey);
    expect(header.docNameHash).toEqual(docNameHash(DOC));
    // Padded to its bucket: the relay sees the bucket, not the length.
    expect(header.ciphertextLength).toBe(paddedLength('secret words'.length + 1) + 16);
    expect(new TextDecoder('latin1').decode(envelope)).not.toContain('secret');
  });

  test('overhead is fixed and small (printed for the cost note)', () => {
    const plain = seal(new Uint8Array(20));
    const withUser = seal(new Uint8Array(20), { userId: USER });
    expect(plain.length - paddedLength(21)).toBe(ENVELOPE_OVERHEAD);
    expect(withUser.length - paddedLength(21)).toBe(ENVELOPE_OVERHEAD + USER.length);
    console.info(
      `envelope overhead: ${ENVELOPE_OVERHEAD} bytes (${ENVELOPE_OVERHEAD + USER.length} with a user id); ` +
        `a 20-byte keystroke update seals to ${plain.length} bytes`,
    );
  });
});

describe('refusals', () => {
  test('a flipped bit anywhere is refused: format bytes as BadRequest, everything else as Forbidden', () => {
    const envelope = seal(bytes('hi!'));
    // version, user id length, the commitments length and the ciphertext length are format; so is
    // the kind byte unless the flip makes another valid kind (1 → 3: raw bytes), which the
    // signature then refuses. The rest is signed content.
    const format = new Set([0, 134, 135, 136, 137, 138, 139, 140, 141, 142]);
    for (let i = 0; i < envelope.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const altered = envelope.slice();
        altered[i] = (altered[i] as number) ^ (1 << bit);
        const badKind = i === 1 && ![1, 2, 3].includes(altered[1] as number);
        expect(
          kindOf(() => openEnvelope(altered, reader())),
          `byte ${i} bit ${bit}`,
        ).toBe(format.has(i) || badKind ? 'BadRequest' : 'Forbidden');
      }
    }
  });

  test('a flipped bit in an envelope with a user id is refused too', () => {
    const envelope = seal(bytes('hi!'), { userId: USER });
    for (let i = 0; i < envelope.length; i++) {
      const altered = envelope.slice();
      altered[i] = (altered[i] as number) ^ 0x04;
      expect(['BadRequest', 'Forbidden'], `byte ${i}`).toContain(
        kindOf(() => openEnvelope(altered, reader())),
      );
    }
  });

  test('every truncation, and trailing bytes, are BadRequests', () => {
    const envelope = seal(bytes('hello'), { userId: USER });
    for (let length = 0; length < envelope.length; length++) {
      expect(
        kindOf(() => openEnvelope(envelope.subarray(0, length), reader())),
        `length ${length}`,
      ).toBe('BadRequest');
      expect(kindOf(() => readEnvelopeHeader(envelope.subarray(0, length)))).toBe('BadRequest');
    }
    expect(kindOf(() => openEnvelope(new Uint8Array([...envelope, 0]), reader()))).toBe('BadRequest');
  });

  test('an envelope replayed into another document is Forbidden', () => {
    const envelope = seal(bytes('hello'));
    expect(kindOf(() => openEnvelope(envelope, reader({ docName: OTHER_DOC })))).toBe('Forbidden');
  });

  test('an envelope signed by a non-member is Forbidden, even with the right document key', () => {
    const forged = sealEnvelope({ docName: DOC, key, author: stranger, plaintext: bytes('pwned') });
    expect(kindOf(() => openEnvelope(forged, reader()))).toBe('Forbidden');
  });

  test("a member's signature over a ciphertext made with another key does not open", () => {
    const impostorKey = { ...key, bytes: createDocKey().bytes };
    const envelope = sealEnvelope({ docName: DOC, key: impostorKey, author: owner, plaintext: bytes('x') });
    expect(kindOf(() => openEnvelope(envelope, reader()))).toBe('Forbidden');
  });

  test('after a rotation, an envelope under the old epoch is a Conflict when a newer one is required', () => {
    const next = rotateDocKey(key);
    const old = seal(bytes('before'));
    const fresh = seal(bytes('after'), { with: next });
    const opts = reader({ keys: keysOf(key, next), minEpoch: next.epoch });
    expect(kindOf(() => openEnvelope(old, opts))).toBe('Conflict');
    expect(new TextDecoder().decode(openEnvelope(fresh, opts).plaintext)).toBe('after');
    // Without the requirement the old entry still opens: the log before a snapshot stays readable.
    expect(kindOf(() => openEnvelope(old, reader({ keys: keysOf(key, next) })))).toBe('no error');
  });

  test('a key the reader does not hold is NotFound, so the client can fetch it and retry', () => {
    const envelope = seal(bytes('hello'), { with: rotateDocKey(key) });
    expect(kindOf(() => openEnvelope(envelope, reader()))).toBe('NotFound');
  });

  test('garbage and mismatched author keys are BadRequests when sealing', () => {
    expect(kindOf(() => openEnvelope(new Uint8Array(300), reader()))).toBe('BadRequest');
    const mixed = { signSecretKey: owner.signSecretKey, signPublicKey: stranger.signPublicKey };
    expect(kindOf(() => sealEnvelope({ docName: DOC, key, author: mixed, plaintext: bytes('x') }))).toBe(
      'BadRequest',
    );
    expect(
      kindOf(() =>
        sealEnvelope({ docName: DOC, key, author: { ...owner, userId: 'bob' }, plaintext: bytes('x') }),
      ),
    ).toBe('BadRequest');
    expect(
      kindOf(() => sealEnvelope({ docName: 'not a doc', key, author: owner, plaintext: bytes('x') })),
    ).toBe('BadRequest');
  });
});

describe('relay-side verification (no document key)', () => {
  test('accepts an envelope signed by a registered key for this document', () => {
    const envelope = seal(bytes('hello'), { userId: USER });
    const header = verifyEnvelopeSignature(envelope, [stranger.signPublicKey, owner.signPublicKey], {
      docName: DOC,
    });
    expect(header.userId).toBe(USER);
    expect(header.keyId).toBe(key.id);
    const seen: string[] = [];
    verifyEnvelopeSignature(envelope, (_authorKey, userId) => {
      seen.push(String(userId));
      return true;
    });
    expect(seen).toEqual([USER]);
  });

  test('refuses a key not registered for the user, another document, an old epoch, or any altered byte', () => {
    const envelope = seal(bytes('hello'));
    expect(kindOf(() => verifyEnvelopeSignature(envelope, [stranger.signPublicKey]))).toBe('Forbidden');
    expect(kindOf(() => verifyEnvelopeSignature(envelope, () => false))).toBe('Forbidden');
    expect(
      kindOf(() => verifyEnvelopeSignature(envelope, [owner.signPublicKey], { docName: OTHER_DOC })),
    ).toBe('Forbidden');
    expect(
      kindOf(() => verifyEnvelopeSignature(envelope, [owner.signPublicKey], { minEpoch: key.epoch + 1 })),
    ).toBe('Conflict');
    const altered = envelope.slice();
    altered[envelope.length - 70] = (altered[envelope.length - 70] as number) ^ 1;
    expect(kindOf(() => verifyEnvelopeSignature(altered, [owner.signPublicKey]))).toBe('Forbidden');
  });
});
