import { beforeAll, describe, expect, it } from 'vitest';
import { deriveIdentity, generateRootSeed } from './identity.ts';
import {
  countersignIdentityRotation,
  identityRotationMessage,
  signIdentityRotation,
  verifyIdentityRotation,
  verifyIdentityRotationCountersignature,
} from './identity-rotation.ts';
import { ready } from './sodium.ts';

describe('identity rotation statements', () => {
  beforeAll(ready);

  it('verify under the old key, for the stated user, relay, challenge and new keys only', () => {
    const old = deriveIdentity(generateRootSeed());
    const next = deriveIdentity(generateRootSeed());
    const thief = deriveIdentity(generateRootSeed());
    const statement = { relayId: 'relay-a', userId: 'user_0123456789abcdef', challenge: 'c'.repeat(43) };
    const signature = signIdentityRotation(statement, old, next);
    const rotation = {
      ...statement,
      oldSignPk: old.signPublicKey,
      newSignPk: next.signPublicKey,
      newBoxPk: next.boxPublicKey,
    };
    expect(verifyIdentityRotation(rotation, signature)).toBe(true);
    expect(verifyIdentityRotation({ ...rotation, newSignPk: thief.signPublicKey }, signature)).toBe(false);
    expect(verifyIdentityRotation({ ...rotation, relayId: 'relay-b' }, signature)).toBe(false);
    expect(verifyIdentityRotation({ ...rotation, userId: 'user_fedcba9876543210' }, signature)).toBe(false);
    // Signed by anyone but the old key, it hands nothing over.
    expect(verifyIdentityRotation(rotation, signIdentityRotation(statement, thief, next))).toBe(false);
    expect(() => identityRotationMessage({ ...rotation, userId: 'a\0b' })).toThrowError(/NUL-free/);
  });

  it('the new key countersigns: a key that claims to have handed the user to someone else’s key proves nothing', () => {
    const old = deriveIdentity(generateRootSeed());
    const next = deriveIdentity(generateRootSeed());
    const made = deriveIdentity(generateRootSeed());
    const statement = { relayId: 'relay-a', userId: 'user_0123456789abcdef', challenge: 'c'.repeat(43) };
    const rotation = {
      ...statement,
      oldSignPk: old.signPublicKey,
      newSignPk: next.signPublicKey,
      newBoxPk: next.boxPublicKey,
    };
    expect(
      verifyIdentityRotationCountersignature(rotation, countersignIdentityRotation(statement, old, next)),
    ).toBe(true);
    // A made-up earlier key can sign a hand-over to `next`, but `next` never countersigned it.
    const invented = { ...rotation, oldSignPk: made.signPublicKey };
    expect(verifyIdentityRotation(invented, signIdentityRotation(statement, made, next))).toBe(true);
    expect(
      verifyIdentityRotationCountersignature(invented, countersignIdentityRotation(statement, old, next)),
    ).toBe(false);
  });
});
