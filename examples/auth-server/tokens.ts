import { SignJWT } from 'jose';

/** How the app server signs its tokens; the relay is configured with the same values. */
export interface TokenConfig {
  /** Shared HS256 secret, at least 32 bytes. Keep it out of the repository in a real app. */
  readonly secret: string;
  /** `iss`: who minted the token (this app). */
  readonly issuer: string;
  /** `aud`: who the token is for (the relay). */
  readonly audience: string;
  /** Lifetime of a token in seconds. */
  readonly lifetimeSeconds: number;
}

/** What a token says about a user. */
export interface TokenClaims {
  /** The app's own user id (`sub`); the relay derives its user id from it and the issuer. */
  readonly subject: string;
  /** Optional level (1 user, 5 moderator); the relay caps it with its maxLevel. */
  readonly level?: number | undefined;
}

/** Mints a token for one signed-in user of the app: HS256, with iss, aud, sub, iat and exp. */
export async function mintToken(
  config: TokenConfig,
  claims: TokenClaims,
): Promise<{ token: string; expiresAt: number }> {
  const now = Math.floor(Date.now() / 1000);
  const expiresAt = now + config.lifetimeSeconds;
  const token = await new SignJWT(claims.level === undefined ? {} : { level: claims.level })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(claims.subject)
    .setIssuer(config.issuer)
    .setAudience(config.audience)
    .setIssuedAt(now)
    .setExpirationTime(expiresAt)
    .sign(new TextEncoder().encode(config.secret));
  return { token, expiresAt: expiresAt * 1000 };
}
