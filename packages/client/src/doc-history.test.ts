import {
  createDocKey,
  deriveIdentity,
  generateRootSeed,
  readEnvelopeHeader,
  ready,
  sealEnvelope,
} from '@scopesync/crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { DocHistory } from './doc-history.ts';

const DOC = 'blob/history';
beforeAll(() => ready());

describe('DocHistory', () => {
  const key = createDocKeyLater();
  function createDocKeyLater() {
    let k: ReturnType<typeof createDocKey> | undefined;
    return () => (k ??= createDocKey());
  }

  /** An author device writing `count` envelopes in its own stream. */
  function author(count: number) {
    const identity = deriveIdentity(generateRootSeed());
    const history = new DocHistory(undefined, identity.signPublicKey);
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const chain = history.next();
      const envelope = sealEnvelope({
        docName: DOC,
        key: key(),
        author: identity,
        plaintext: new Uint8Array([i]),
        chain,
      });
      history.sealed(envelope, chain);
      out.push(envelope);
    }
    return { identity, history, envelopes: out };
  }

  const reader = () => new DocHistory(undefined, deriveIdentity(generateRootSeed()).signPublicKey);
  const see = (h: DocHistory, e: Uint8Array) => h.observe(readEnvelopeHeader(e), e);

  it('accepts a stream in order and survives a reload at its marks', () => {
    const { envelopes } = author(3);
    const h = reader();
    for (const e of envelopes) expect(see(h, e)).toBeUndefined();
    const again = new DocHistory(h.toStored(), new Uint8Array(32));
    expect(see(again, envelopes[2] as Uint8Array)).toMatchObject({ kind: 'replay', refuse: true });
  });

  it('reports a gap, refuses what goes backwards or forks', () => {
    const { envelopes } = author(4);
    const [e1, e2, e3, e4] = envelopes as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    const h = reader();
    expect(see(h, e1)).toBeUndefined();
    expect(see(h, e3)).toMatchObject({ kind: 'gap', refuse: false });
    expect(see(h, e2)).toMatchObject({ kind: 'fork', refuse: true });
    expect(see(h, e4)).toBeUndefined();
    // A different envelope 2 of the same stream (a forked history) after envelope 1.
    const other = reader();
    expect(see(other, e1)).toBeUndefined();
    const { identity } = author(0);
    const forged = sealEnvelope({
      docName: DOC,
      key: key(),
      author: identity,
      plaintext: new Uint8Array([9]),
      chain: readEnvelopeHeader(e2).chain,
    });
    expect(see(other, forged)).toMatchObject({ kind: 'forged', refuse: true });
  });

  it('refuses a snapshot that covers less than was read, and accepts one that covers it', () => {
    const writer = author(3);
    const h = reader();
    for (const e of writer.envelopes) see(h, e);
    const old = new DocHistory(undefined, writer.identity.signPublicKey);
    const stale = sealEnvelope({
      docName: DOC,
      key: key(),
      author: writer.identity,
      kind: 'snapshot',
      plaintext: new Uint8Array([0]),
      commitments: old.commitments(),
    });
    expect(h.observeSnapshot(readEnvelopeHeader(stale), stale)).toMatchObject({
      kind: 'rollback',
      refuse: true,
    });
    const current = sealEnvelope({
      docName: DOC,
      key: key(),
      author: writer.identity,
      kind: 'snapshot',
      plaintext: new Uint8Array([0]),
      commitments: writer.history.commitments(),
    });
    expect(h.observeSnapshot(readEnvelopeHeader(current), current)).toBeUndefined();
  });
});
