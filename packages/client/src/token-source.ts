import { isLevel, isUserId, type Level, SyncError } from '@scopesync/core';
import type { HttpApi } from './http-api.ts';

/**
 * A token from the app's own auth server (docs/auth.md): a string, or a function returning a
 * fresh one (called on first use, on reconnect when the cached one is about to expire, and after
 * the relay refused the cached one).
 */
export type TokenProvider = string | (() => string | Promise<string>);

/** A token this close to its `exp` is replaced before it is sent, in ms. */
const REFRESH_MARGIN_MS = 30_000;

/**
 * Holds the current token and asks the provider for a new one when needed. Concurrent callers
 * share one call of the provider.
 */
export class TokenSource {
  readonly #provider: TokenProvider;
  readonly #now: () => number;
  #token: string | undefined;
  #pending: Promise<string> | undefined;

  constructor(provider: TokenProvider, now: () => number = Date.now) {
    this.#provider = provider;
    this.#now = now;
  }

  /** The token to send: the cached one unless it is missing or expires within 30 s. */
  current(): Promise<string> {
    const token = this.#token;
    if (token !== undefined) {
      const exp = expiryOf(token);
      if (exp === null || exp - this.#now() > REFRESH_MARGIN_MS) return Promise.resolve(token);
    }
    return this.refresh();
  }

  /** Asks the provider for a new token (a fixed string stays what it is). */
  refresh(): Promise<string> {
    if (typeof this.#provider === 'string') {
      this.#token = this.#provider;
      return Promise.resolve(this.#provider);
    }
    const provider = this.#provider;
    this.#pending ??= (async () => {
      try {
        const token = await provider();
        if (typeof token !== 'string' || token === '')
          throw new SyncError('Unauthorized', 'the token function returned no token');
        this.#token = token;
        return token;
      } catch (error) {
        if (error instanceof SyncError) throw error;
        throw new SyncError('Unavailable', 'the token function failed', { cause: error });
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }
}

/** A JWT's `exp` in epoch ms, read without verifying (the relay verifies); null when it has none. */
function expiryOf(token: string): number | null {
  const payload = token.split('.')[1];
  if (payload === undefined) return null;
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/**
 * The identity a token stands for, asked from the relay (`GET /keys/validate`): its user id and
 * level. Offline (relay unreachable), the user id stays unknown until the relay can be asked.
 */
export async function resolveTokenIdentity(
  http: HttpApi,
): Promise<{ userId: string | undefined; level: Level; apiKey: undefined }> {
  try {
    const answer = await http.json<{ user_id?: unknown; level?: unknown }>({
      method: 'GET',
      path: '/keys/validate',
    });
    return {
      userId: isUserId(answer.user_id) ? answer.user_id : undefined,
      level: isLevel(answer.level) ? answer.level : 1,
      apiKey: undefined,
    };
  } catch (error) {
    if (error instanceof SyncError && error.kind === 'Unavailable')
      return { userId: undefined, level: 1, apiKey: undefined };
    throw error;
  }
}
