import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from '@scopesync/core';
import { exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type JwtAuthOptions, JwtVerifier, userIdForSubject } from './jwt-verifier.ts';

const ISSUER = 'https://auth.app.example';
const AUDIENCE = 'scopesync-relay';
const SECRET = 'this secret is at least thirty-two bytes long';

type SigningKey = Parameters<SignJWT['sign']>[0];

async function sign(
  key: SigningKey,
  alg: string,
  claims: JWTPayload = {},
  header: { kid?: string } = {},
): Promise<string> {
  return new SignJWT({
    sub: 'alice',
    iss: ISSUER,
    aud: AUDIENCE,
    exp: Math.floor(Date.now() / 1000) + 600,
    ...claims,
  })
    .setProtectedHeader({ alg, ...header })
    .sign(key);
}

const secretKey = new TextEncoder().encode(SECRET);
const base = { issuer: ISSUER, audience: AUDIENCE } as const;
const verifier = (options: Partial<JwtAuthOptions> = {}) =>
  new JwtVerifier({ ...base, secret: SECRET, ...options } as JwtAuthOptions);

describe('JwtVerifier key sources', () => {
  let dir: string;
  let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
  let ec: Awaited<ReturnType<typeof generateKeyPair>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scopesync-jwks-'));
    rsa = await generateKeyPair('RS256');
    ec = await generateKeyPair('ES256');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('verifies HS256 with a shared secret and refuses a secret shorter than 32 bytes', async () => {
    const verified = await verifier().verify(await sign(secretKey, 'HS256'));
    expect(verified.userId).toBe(userIdForSubject(ISSUER, 'alice'));
    expect(() => verifier({ secret: 'short' } as Partial<JwtAuthOptions>)).toThrow(/at least 32 bytes/);
  });

  it('verifies RS256 with a PEM public key and ES256 with a JWK', async () => {
    const pem = await exportSPKI(rsa.publicKey);
    const byPem = new JwtVerifier({ ...base, publicKey: pem });
    await expect(byPem.verify(await sign(rsa.privateKey, 'RS256'))).resolves.toMatchObject({ level: null });
    const byJwk = new JwtVerifier({ ...base, publicKey: await exportJWK(ec.publicKey) });
    await expect(byJwk.verify(await sign(ec.privateKey, 'ES256'))).resolves.toBeDefined();
    // A token signed by another key pair is refused.
    await expect(byJwk.verify(await sign(rsa.privateKey, 'RS256'))).rejects.toMatchObject({
      kind: 'Unauthorized',
    });
  });

  it('picks the key of a JWKS file by kid', async () => {
    const file = join(dir, 'jwks.json');
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256' },
      { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256' },
    ];
    await writeFile(file, JSON.stringify({ keys }));
    const jwks = new JwtVerifier({ ...base, jwksFile: file });
    await expect(jwks.verify(await sign(ec.privateKey, 'ES256', {}, { kid: 'ec-1' }))).resolves.toBeDefined();
    await expect(
      jwks.verify(await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' })),
    ).resolves.toBeDefined();
    await expect(jwks.verify(await sign(ec.privateKey, 'ES256', {}, { kid: 'nobody' }))).rejects.toThrow(
      /no matching key/,
    );
  });

  it('never takes an HMAC token signed with the public key as the secret (algorithm confusion)', async () => {
    const pem = await exportSPKI(rsa.publicKey);
    const byPem = new JwtVerifier({ ...base, publicKey: pem });
    const forged = await sign(new TextEncoder().encode(pem), 'HS256');
    await expect(byPem.verify(forged)).rejects.toMatchObject({ kind: 'Unauthorized' });
  });

  it('needs exactly one key source, an issuer and an audience', () => {
    expect(() => new JwtVerifier({ ...base } as JwtAuthOptions)).toThrow(/exactly one/);
    expect(() => new JwtVerifier({ ...base, issuer: '', secret: SECRET })).toThrow(/issuer/);
    expect(() => new JwtVerifier({ ...base, audience: [], secret: SECRET })).toThrow(/audience/);
  });
});

describe('JwtVerifier checks and claims', () => {
  it('refuses a wrong issuer, a wrong audience, no exp, an expired or not-yet-valid token, garbage', async () => {
    const v = verifier({ clockToleranceSeconds: 0 });
    const now = Math.floor(Date.now() / 1000);
    const reasons = async (claims: Record<string, unknown>) => {
      try {
        await v.verify(await sign(secretKey, 'HS256', claims as JWTPayload));
        return 'accepted';
      } catch (error) {
        return (error as Error).message;
      }
    };
    expect(await reasons({ iss: 'https://evil.example' })).toBe('invalid token: iss claim check failed');
    expect(await reasons({ aud: 'other' })).toBe('invalid token: aud claim check failed');
    expect(await reasons({ exp: undefined })).toBe('invalid token: exp claim check failed');
    expect(await reasons({ exp: now - 1 })).toBe('invalid token: expired');
    expect(await reasons({ nbf: now + 60 })).toBe('invalid token: nbf claim check failed');
    expect(await reasons({ sub: undefined })).toBe('invalid token: no sub claim');
    await expect(v.verify('not.a.jwt!')).rejects.toThrow('invalid token: not a JWT');
  });

  it('maps the level claim and roles, at least User, capped by maxLevel; none named is null', async () => {
    const v = verifier({
      maxLevel: Level.Moderator,
      roleLevels: { staff: Level.Moderator, boss: Level.Admin },
    });
    const level = async (claims: JWTPayload) =>
      (await v.verify(await sign(secretKey, 'HS256', claims))).level;
    expect(await level({})).toBeNull();
    expect(await level({ level: 1 })).toBe(Level.User);
    expect(await level({ level: 0 })).toBe(Level.User);
    expect(await level({ level: 10 })).toBe(Level.Moderator);
    expect(await level({ roles: 'staff' })).toBe(Level.Moderator);
    expect(await level({ roles: ['reader', 'boss'] })).toBe(Level.Moderator);
    expect(await level({ roles: ['reader'] })).toBeNull();
    await expect(level({ level: 7 })).rejects.toThrow(/level must be/);
    // The default cap is User: a token cannot make an admin unless the operator allows it.
    expect((await verifier().verify(await sign(secretKey, 'HS256', { level: 10 }))).level).toBe(Level.User);
  });

  it('derives user ids per issuer and subject, or takes a relay user id claim verbatim', async () => {
    const v = verifier({ issuer: [ISSUER, 'https://other.example'], claims: { userId: 'relay_user' } });
    const a = await v.verify(await sign(secretKey, 'HS256', { sub: 'bob' }));
    const b = await v.verify(await sign(secretKey, 'HS256', { sub: 'bob', iss: 'https://other.example' }));
    expect(a.userId).toMatch(/^user_[0-9a-f]{16}$/);
    expect(a.userId).not.toBe(b.userId);
    const verbatim = await v.verify(await sign(secretKey, 'HS256', { relay_user: 'user_0123456789abcdef' }));
    expect(verbatim.userId).toBe('user_0123456789abcdef');
    await expect(v.verify(await sign(secretKey, 'HS256', { relay_user: 'bob' }))).rejects.toThrow(
      /not a relay user id/,
    );
  });
});
