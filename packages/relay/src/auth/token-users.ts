import { createHash } from 'node:crypto';
import { isLevel, isUserId, Level, type RelayStore, SyncError, type UserId } from '@scopesync/core';
import type { AccountService } from '../services/account-service.ts';
import type { VerifiedToken } from './jwt-verifier.ts';

/**
 * Checks one token and says who it is: the relay's `JwtVerifier`, or the app's own function
 * (`auth.verifyToken`, Hocuspocus's `onAuthenticate`). Throws (any error) to refuse it.
 */
export interface TokenVerifier {
  verify(token: string): Promise<VerifiedToken>;
}

/** A signed-in user, as `AccessControl` hands it on. */
export interface TokenCaller {
  readonly kind: 'user';
  readonly userId: UserId;
  readonly level: Level;
}

/** A token that passed: who it is, until when, and the id sockets remember it by. */
export interface TokenAuthentication {
  readonly caller: TokenCaller;
  /** Epoch milliseconds of the token's `exp`. */
  readonly expiresAt: number;
  /** `jwt:<exp ms>:<user id>:<hash>`: names the token without holding it (see {@link TokenUsers.reauthenticate}). */
  readonly credential: string;
}

/** Options of {@link TokenUsers}. */
export interface TokenUsersOptions {
  readonly verifier: TokenVerifier;
  readonly store: RelayStore;
  /** Level changes a token brings go through it, so open subscriptions are decided again. */
  readonly accounts: AccountService;
  readonly now: () => number;
}

const TOKEN_CREDENTIAL = /^jwt:(\d+):(user_[0-9a-f]{16}):[0-9a-f]{32}$/;

/** True when a socket's credential id stands for a token (not an API key's hash). */
export function isTokenCredential(credential: string): boolean {
  return TOKEN_CREDENTIAL.test(credential);
}

/** When the token a credential id stands for expires (epoch ms), or null for an API key's. */
export function tokenExpiryOf(credential: string): number | null {
  const match = TOKEN_CREDENTIAL.exec(credential);
  return match ? Number(match[1]) : null;
}

/**
 * The users behind the app's tokens: verifies a token, creates its user on first use (no
 * device, no API key), and applies the level its claims give through `AccountService.setLevel`,
 * so the user's open subscriptions are decided again at once.
 */
export class TokenUsers {
  readonly #verifier: TokenVerifier;
  readonly #store: RelayStore;
  readonly #accounts: AccountService;
  readonly #now: () => number;

  constructor(options: TokenUsersOptions) {
    this.#verifier = options.verifier;
    this.#store = options.store;
    this.#accounts = options.accounts;
    this.#now = options.now;
  }

  /** Authenticates a token; Unauthorized when it is invalid or expired. */
  async authenticate(token: string): Promise<TokenAuthentication> {
    const verified = await this.#verify(token);
    const user = await this.#userOf(verified.userId, verified.level);
    let level = user.level;
    if (verified.level !== null && verified.level !== level) {
      // The app's auth server decides this user's level: follow it, and tell the sockets.
      await this.#accounts.setLevel(verified.userId, verified.level);
      level = verified.level;
    }
    const hash = createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 32);
    return {
      caller: { kind: 'user', userId: verified.userId, level },
      expiresAt: verified.expiresAt,
      credential: `jwt:${verified.expiresAt}:${verified.userId}:${hash}`,
    };
  }

  /** The verifier's answer, checked: any failure or malformed answer is Unauthorized (401 / 4401). */
  async #verify(token: string): Promise<VerifiedToken> {
    let verified: VerifiedToken;
    try {
      verified = await this.#verifier.verify(token);
    } catch (error) {
      if (error instanceof SyncError && error.kind === 'Unauthorized') throw error;
      throw new SyncError('Unauthorized', 'invalid token', { cause: error });
    }
    if (
      !isUserId(verified?.userId) ||
      (verified.level !== null && !isLevel(verified.level)) ||
      !Number.isFinite(verified.expiresAt)
    )
      throw new SyncError('Unauthorized', 'invalid token: the verifier gave no user id, level or expiry');
    if (verified.expiresAt <= this.#now()) throw new SyncError('Unauthorized', 'invalid token: expired');
    return verified;
  }

  /**
   * Who a token's credential id stands for now, at the user's current level; null once the token
   * expired or its user is gone. How open sockets are checked again without holding the token.
   */
  async reauthenticate(credential: string): Promise<TokenCaller | null> {
    const match = TOKEN_CREDENTIAL.exec(credential);
    if (!match || Number(match[1]) <= this.#now()) return null;
    const user = await this.#store.getUser(match[2] as string);
    if (!user || !isLevel(user.level)) return null;
    return { kind: 'user', userId: user.userId as UserId, level: user.level };
  }

  /** The stored user, created on first use at the token's level (User when it names none). */
  async #userOf(userId: UserId, level: Level | null): Promise<{ level: Level }> {
    const existing = await this.#store.getUser(userId);
    if (existing && isLevel(existing.level)) return { level: existing.level };
    if (existing) throw new SyncError('Unauthorized', 'this user has no valid level');
    const now = this.#now();
    const created = level ?? Level.User;
    try {
      await this.#store.createUser(
        { userId, level: created, deviceName: 'app token', signPk: null, boxPk: null, createdAt: now },
        // The store keeps every user with a first key. A token user has none: this record is
        // the hash of a public string, revoked from the start, so nothing ever authenticates with it.
        { keyHash: placeholderKeyHash(userId), userId, createdAt: now, revokedAt: now },
      );
      return { level: created };
    } catch (error) {
      // Two first requests at once: the other one created the user.
      const raced = await this.#store.getUser(userId);
      if (raced && isLevel(raced.level)) return { level: raced.level };
      throw error;
    }
  }
}

function placeholderKeyHash(userId: string): string {
  return createHash('sha256').update(`token-user:${userId}`, 'utf8').digest('hex');
}
