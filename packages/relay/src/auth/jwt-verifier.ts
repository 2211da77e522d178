import { createHash, createPublicKey, createSecretKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isLevel, isUserId, Level, SyncError, type UserId } from '@scopesync/core';
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWK, type JWTPayload, jwtVerify } from 'jose';

/**
 * Which key signs the app's tokens: exactly one of a public key (PEM `-----BEGIN PUBLIC KEY-----`
 * or a JWK), a JWKS file (the app's `/.well-known/jwks.json`, saved; keys picked by `kid`), or a
 * shared secret (HMAC, HS256 by default).
 */
export type JwtKeySource =
  | { readonly publicKey: string | JWK }
  | { readonly jwksFile: string }
  | { readonly jwks: JSONWebKeySet }
  | { readonly secret: string | Uint8Array };

/** How tokens map to users (see docs/auth.md, "Claims"). */
export interface JwtClaimsOptions {
  /**
   * The claim naming the app's user (default `sub`). The relay's user id is derived from it and
   * the issuer ({@link userIdForSubject}), so the app's ids never collide with registered users.
   */
  readonly subject?: string | undefined;
  /** A claim that holds a relay user id (`user_` + 16 hex) verbatim, used instead of the derived one when present. */
  readonly userId?: string | undefined;
  /** A numeric claim holding the level (0, 1, 5, 10). Default `level`. */
  readonly level?: string | undefined;
  /** A claim holding a role or a list of roles, mapped through `roleLevels`. Default `roles`. */
  readonly roles?: string | undefined;
}

/** Options of {@link JwtVerifier}: the key, the expected issuer and audience, and the claims map. */
export type JwtAuthOptions = JwtKeySource & {
  /** The `iss` every token must carry (one of these). Required: a token from anyone else is refused. */
  readonly issuer: string | readonly string[];
  /** The `aud` every token must carry (one of these). Required: tokens minted for another service are refused. */
  readonly audience: string | readonly string[];
  /** Accepted `alg` values. Default: HS256/384/512 with a secret; RS*, PS*, ES*, EdDSA with a public key. */
  readonly algorithms?: readonly string[] | undefined;
  /** Clock skew allowed on `exp` and `nbf`, in seconds. Default 5. */
  readonly clockToleranceSeconds?: number | undefined;
  readonly claims?: JwtClaimsOptions | undefined;
  /** Role name → level, e.g. `{ editor: 1, moderator: 5 }`. The highest matching role wins. */
  readonly roleLevels?: Readonly<Record<string, Level>> | undefined;
  /**
   * The highest level a token can give (default User): a token claiming more gets this. Raise it
   * to let the app server make moderators (5) or admins (10).
   */
  readonly maxLevel?: Level | undefined;
};

/** What a verified token says. */
export interface VerifiedToken {
  readonly userId: UserId;
  /** The level the token gives (capped by `maxLevel`), or null when it says nothing about one. */
  readonly level: Level | null;
  /** When the token expires, epoch milliseconds. */
  readonly expiresAt: number;
}

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
const PUBLIC_KEY_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];
/** Longest token accepted, in characters: bounds the work a garbage header can cause. */
export const MAX_TOKEN_LENGTH = 8192;
/** Three base64url parts: the shape of a compact JWS. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** True when `value` has the shape of a compact JWT (it may still be invalid). */
export function isJwtShaped(value: string): boolean {
  return value.length <= MAX_TOKEN_LENGTH && JWT_SHAPE.test(value);
}

/**
 * The relay user id of an app's user: `user_` + the first 16 hex characters of
 * SHA-256("jwt" NUL issuer NUL subject). Deterministic, so the app server can compute it (to
 * share with a user, to address their USER_PUBLIC namespace) without asking the relay.
 */
export function userIdForSubject(issuer: string, subject: string): UserId {
  const digest = createHash('sha256').update(`jwt\0${issuer}\0${subject}`, 'utf8').digest('hex');
  return `user_${digest.slice(0, 16)}` as UserId;
}

/**
 * Verifies tokens minted by the app's own auth server with `jose`: signature (with the one
 * configured key source), `iss`, `aud`, `exp` (required) and `nbf`; then maps the claims to a
 * relay user id and a level. Every failure is Unauthorized with a reason that names the check,
 * never the token.
 */
export class JwtVerifier {
  readonly #options: JwtAuthOptions;
  readonly #key: KeyObject | ReturnType<typeof createLocalJWKSet>;
  readonly #algorithms: string[];
  readonly #maxLevel: Level;

  constructor(options: JwtAuthOptions) {
    this.#options = options;
    const sources = ['publicKey', 'jwksFile', 'jwks', 'secret'].filter((k) => k in options);
    if (sources.length !== 1)
      throw new SyncError('BadRequest', 'jwt: give exactly one of publicKey, jwksFile, jwks or secret');
    if (issuersOf(options.issuer).length === 0)
      throw new SyncError('BadRequest', 'jwt: an issuer is required');
    if (issuersOf(options.audience).length === 0)
      throw new SyncError('BadRequest', 'jwt: an audience is required');
    this.#key = keyOf(options);
    this.#algorithms = [
      ...(options.algorithms ?? ('secret' in options ? HMAC_ALGORITHMS : PUBLIC_KEY_ALGORITHMS)),
    ];
    const maxLevel = options.maxLevel ?? Level.User;
    if (!isLevel(maxLevel)) throw new SyncError('BadRequest', 'jwt: maxLevel must be 0, 1, 5 or 10');
    this.#maxLevel = maxLevel;
    for (const [role, level] of Object.entries(options.roleLevels ?? {})) {
      if (!isLevel(level))
        throw new SyncError('BadRequest', `jwt: the level of role ${role} must be 0, 1, 5 or 10`);
    }
  }

  /** Verifies a token and maps its claims; Unauthorized when anything is wrong with it. */
  async verify(token: string): Promise<VerifiedToken> {
    if (!isJwtShaped(token)) throw new SyncError('Unauthorized', 'invalid token: not a JWT');
    let payload: JWTPayload;
    try {
      const verifyOptions = {
        issuer: issuersOf(this.#options.issuer),
        audience: issuersOf(this.#options.audience),
        algorithms: this.#algorithms,
        clockTolerance: this.#options.clockToleranceSeconds ?? 5,
        requiredClaims: ['exp'],
      };
      const result =
        typeof this.#key === 'function'
          ? await jwtVerify(token, this.#key, verifyOptions)
          : await jwtVerify(token, this.#key, verifyOptions);
      payload = result.payload;
    } catch (error) {
      throw new SyncError('Unauthorized', `invalid token: ${reasonOf(error)}`);
    }
    return {
      userId: this.#userIdOf(payload),
      level: this.#levelOf(payload),
      expiresAt: (payload.exp as number) * 1000,
    };
  }

  #userIdOf(payload: JWTPayload): UserId {
    const claims = this.#options.claims;
    if (claims?.userId !== undefined) {
      const verbatim = payload[claims.userId];
      if (verbatim !== undefined) {
        if (!isUserId(verbatim))
          throw new SyncError('Unauthorized', `invalid token: ${claims.userId} is not a relay user id`);
        return verbatim;
      }
    }
    const subjectClaim = claims?.subject ?? 'sub';
    const subject = payload[subjectClaim];
    if (typeof subject !== 'string' || subject === '' || subject.length > 1024)
      throw new SyncError('Unauthorized', `invalid token: no ${subjectClaim} claim`);
    return userIdForSubject(payload.iss as string, subject);
  }

  /** The level the claims give, capped at maxLevel and at least User; null when they name none. */
  #levelOf(payload: JWTPayload): Level | null {
    let level: number | null = null;
    const levelValue = payload[this.#options.claims?.level ?? 'level'];
    if (levelValue !== undefined) {
      if (!isLevel(levelValue))
        throw new SyncError('Unauthorized', 'invalid token: level must be 0, 1, 5 or 10');
      level = levelValue;
    }
    const roleLevels = this.#options.roleLevels;
    const rolesValue = payload[this.#options.claims?.roles ?? 'roles'];
    if (roleLevels !== undefined && rolesValue !== undefined) {
      const roles = Array.isArray(rolesValue) ? rolesValue : [rolesValue];
      for (const role of roles) {
        const mapped =
          typeof role === 'string' && Object.hasOwn(roleLevels, role) ? roleLevels[role] : undefined;
        if (mapped !== undefined) level = Math.max(level ?? Level.User, mapped);
      }
    }
    if (level === null) return null;
    // A token names a signed-in user: never a guest, never above what the operator allows.
    return Math.min(Math.max(level, Level.User), this.#maxLevel) as Level;
  }
}

function issuersOf(value: string | readonly string[]): string[] {
  return (typeof value === 'string' ? [value] : [...value]).filter((v) => v !== '');
}

function keyOf(options: JwtAuthOptions): KeyObject | ReturnType<typeof createLocalJWKSet> {
  try {
    if ('secret' in options) {
      const secret =
        typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret;
      // RFC 7518 §3.2: an HS256 key must be at least as long as the hash.
      if (secret.byteLength < 32)
        throw new SyncError('BadRequest', 'jwt: the secret must be at least 32 bytes');
      return createSecretKey(secret);
    }
    if ('jwksFile' in options) {
      const jwks = JSON.parse(readFileSync(options.jwksFile, 'utf8')) as JSONWebKeySet;
      return createLocalJWKSet(jwks);
    }
    if ('jwks' in options) return createLocalJWKSet(options.jwks);
    const key =
      typeof options.publicKey === 'string'
        ? createPublicKey(options.publicKey)
        : createPublicKey({ key: options.publicKey as JsonWebKey, format: 'jwk' });
    if (key.type !== 'public') throw new SyncError('BadRequest', 'jwt: publicKey must be a public key');
    return key;
  } catch (error) {
    if (error instanceof SyncError) throw error;
    throw new SyncError('BadRequest', `jwt: cannot load the key: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** A short reason for a refused token, from jose's error codes. */
function reasonOf(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `${error.claim} claim check failed`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'bad signature';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (error instanceof errors.JWKSNoMatchingKey) return 'no matching key';
  if (error instanceof errors.JOSEError) return error.code;
  return 'malformed';
}
