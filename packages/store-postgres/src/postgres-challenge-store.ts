import { SyncError } from '@scopesync/core';
import { PostgresHandle, type PostgresStoreOptions } from './postgres-handle.ts';
import { toSafeInteger } from './postgres-pool.ts';

/** Options of {@link PostgresChallengeStore}: where the data lives; every other field has a default. */
export type PostgresChallengeStoreOptions = PostgresStoreOptions;

/**
 * Single-use registration challenges in PostgreSQL, so that a challenge one relay issued can be
 * redeemed on any other, and only once across all of them.
 */
export class PostgresChallengeStore {
  readonly #handle: PostgresHandle;
  readonly #sql: { issue: string; redeem: string; purge: string };

  private constructor(handle: PostgresHandle) {
    this.#handle = handle;
    const s = handle.schema;
    this.#sql = {
      issue: `INSERT INTO ${s}.challenges (challenge, expires_at) VALUES ($1, $2)`,
      redeem: `DELETE FROM ${s}.challenges WHERE challenge = $1 RETURNING expires_at`,
      purge: `DELETE FROM ${s}.challenges WHERE expires_at <= $1`,
    };
  }

  /** Connects (or takes `options.pool`), creates and migrates the schema, and resolves with the store. */
  static async open(options: PostgresChallengeStoreOptions): Promise<PostgresChallengeStore> {
    return new PostgresChallengeStore(await PostgresHandle.open(options, 'the challenge store is closed'));
  }

  /** Records `challenge` as redeemable until `expiresAt` (epoch ms, exclusive). Conflict if it was issued already. */
  async issue(challenge: string, expiresAt: number): Promise<void> {
    this.#handle.checkOpen();
    if (typeof challenge !== 'string' || challenge === '') {
      throw new SyncError('BadRequest', 'a challenge must be a non-empty string');
    }
    if (!Number.isSafeInteger(expiresAt)) {
      throw new SyncError('BadRequest', `expiresAt must be an integer, got ${String(expiresAt)}`);
    }
    await this.#handle.run('cannot issue the challenge', (q) =>
      q.query(this.#sql.issue, [challenge, expiresAt]),
    );
  }

  /**
   * Consumes `challenge`: true when it was issued and `now` is before its expiry. Atomic, so of
   * concurrent redemptions on any number of relays at most one gets true; an expired challenge
   * is consumed too.
   */
  async redeem(challenge: string, now: number): Promise<boolean> {
    this.#handle.checkOpen();
    if (typeof challenge !== 'string') return false;
    const rows = await this.#handle.run('cannot redeem the challenge', async (q) => {
      return (await q.query<{ expires_at: bigint }>(this.#sql.redeem, [challenge])).rows;
    });
    return rows[0] !== undefined && now < toSafeInteger(rows[0].expires_at, 'expiresAt');
  }

  /** Deletes the challenges expired at `now`; resolves with how many. */
  async purge(now: number): Promise<number> {
    this.#handle.checkOpen();
    const result = await this.#handle.run('cannot purge the challenges', (q) =>
      q.query(this.#sql.purge, [now]),
    );
    return result.rowCount ?? 0;
  }

  /** Ends the pool if the store opened it. Idempotent; later calls reject with Unavailable. */
  async close(): Promise<void> {
    await this.#handle.close();
  }
}
