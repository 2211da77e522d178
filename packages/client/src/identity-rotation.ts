import { type KeyValueStore, parseDocName, SyncError } from '@scopesync/core';
import type { Identity as CryptoIdentity } from '@scopesync/crypto';
import { asSyncError } from './as-sync-error.ts';
import { sameBytes } from './base64.ts';
import { KV_TABLES } from './client-store.ts';
import { requireStoredKey } from './doc-key-record.ts';
import type { DocKeys } from './doc-keys.ts';
import type { KeyApi } from './key-api.ts';
import { loadCrypto } from './load-crypto.ts';
import type { SeedStore } from './seed-store.ts';
import type { Trust } from './trust.ts';

// Identity rotation on the client (docs/encryption.md, "A lost device"): a new root seed, the
// relay handing the user over to its keys, and every document key this user holds moved out of
// the old seed's reach.

/** An open document the rotation syncs before it and replaces by a snapshot after it. */
export interface RotatingDoc {
  readonly whenSynced: Promise<void>;
  /** True while the relay does not have the doc (yet): whenSynced then stays pending. */
  readonly waiting: boolean;
  whenAcked(): Promise<void>;
  replaceBySnapshot(): Promise<void>;
  release(): Promise<void>;
}

/** What {@link rotateIdentity} needs from the client's encryption. */
export interface IdentityRotationContext {
  readonly kv: KeyValueStore;
  readonly api: KeyApi;
  readonly seeds: SeedStore;
  readonly trust: Trust;
  readonly userId: string;
  /** The identity being retired. */
  readonly current: CryptoIdentity;
  /** A doc's keys under the current identity (loaded once, shared with open handles). */
  docKeys(docName: string): Promise<DocKeys>;
  /** Opens a doc (encrypted) for syncing and its snapshot. */
  openDoc(docName: string): RotatingDoc;
  /** From now on every key of the client is `next`'s (the relay registered it). */
  switchTo(next: CryptoIdentity): Promise<void>;
}

/** What {@link rotateIdentity} did. */
export interface IdentityRotationResult {
  /** The new recovery phrase: write it down. The old one opens nothing written from now on. */
  readonly recoveryPhrase: string;
  /** Documents whose keys were rotated (or, for blobs shared with this user, re-wrapped). */
  readonly rekeyed: readonly string[];
  /** Documents that could not be re-keyed, and why (offline, not granted, …). */
  readonly failed: readonly { readonly docName: string; readonly error: SyncError }[];
}

/**
 * Moves this user to a new identity after a device holding the seed was lost:
 *
 * 1. every encrypted doc this user holds keys for (this device's, the user's private docs and
 *    owned encrypted blobs on the relay) is loaded and, when this user writes its snapshot, synced and acknowledged;
 * 2. a new root seed is stored (the old one is put back if the relay refuses), and the relay hands
 *    the user over to its keys — the old key signs the statement, the new one countersigns it; the
 *    relay revokes the user's other API keys and retires the old signing key;
 * 3. every doc's keys are re-wrapped under the new KEK and, for docs this user owns, rotated: a
 *    private doc gets a new key and a blob a new epoch (a member list version signed by the new
 *    key, grants sealed to the members), then a snapshot under it replaces the relay's log.
 *
 * The thief's copy of the old seed then opens nothing written after the rotation.
 */
export async function rotateIdentity(ctx: IdentityRotationContext): Promise<IdentityRotationResult> {
  const crypto = await loadCrypto();
  const failed: { docName: string; error: SyncError }[] = [];
  const fail = (docName: string, error: unknown): void => {
    failed.push({ docName, error: asSyncError(error, 'Internal', `re-keying ${docName} failed`) });
  };

  // 1. Everything read and sent under the old identity first: its envelopes verify only under it.
  // Our own earlier keys too (earlier rotations on other devices), before this one extends them.
  await ctx.trust.loadOwnHistory();
  const docs: { name: string; keys: DocKeys; handle?: RotatingDoc; onRelay: boolean }[] = [];
  for (const name of await docsHeld(ctx)) {
    try {
      await requireStoredKey(ctx.kv, ctx.api, name);
      const keys = await ctx.docKeys(name);
      if (!keys.isOwner) {
        docs.push({ name, keys, onRelay: true });
        continue;
      }
      const handle = ctx.openDoc(name);
      const entry = { name, keys, handle, onRelay: true };
      docs.push(entry);
      entry.onRelay = await caughtUp(handle);
      if (entry.onRelay) await handle.whenAcked();
    } catch (error) {
      fail(name, error);
    }
  }
  const ready = docs.filter((d) => !failed.some((f) => f.docName === d.name));

  // 2. The new seed, stored before the relay learns its keys (a crash between leaves the old
  // identity registered and the old phrase valid, never a registered key without its seed).
  const previousSeed = await ctx.seeds.load();
  const seed = crypto.generateRootSeed();
  let recoveryPhrase: string;
  let next: CryptoIdentity;
  try {
    next = crypto.deriveIdentity(seed);
    recoveryPhrase = await crypto.exportRecoveryPhrase(seed);
    await ctx.seeds.save(seed, true);
    try {
      const { challenge, relayId } = await ctx.api.challenge();
      const statement = { relayId, userId: ctx.userId, challenge };
      await ctx.api.rotateUserKeys(
        ctx.userId,
        {
          keys: { signPublicKey: next.signPublicKey, boxPublicKey: next.boxPublicKey },
          purpose: 'set-keys',
          challenge,
          proof: crypto.signKeyProof({ purpose: 'set-keys', relayId, challenge, userId: ctx.userId }, next),
        },
        {
          signature: crypto.signIdentityRotation(statement, ctx.current, next),
          countersignature: crypto.countersignIdentityRotation(statement, ctx.current, next),
        },
      );
    } catch (error) {
      const outcome = await registeredNow(ctx, next);
      if (outcome !== 'rotated') {
        // Refused: the old identity stands. Unknown (the answer was lost and the relay cannot be
        // asked): the new seed stays, since a relay that did rotate knows only its keys; if it did
        // not, the old recovery phrase still restores the account.
        if (outcome === 'refused' && previousSeed) await ctx.seeds.save(previousSeed, true);
        await Promise.allSettled(docs.map((d) => d.handle?.release()));
        throw error;
      }
    }
  } finally {
    seed.fill(0);
    previousSeed?.fill(0);
  }
  await ctx.trust.recordOwnRotation(ctx.current.signPublicKey);
  await ctx.switchTo(next);

  // 3. Each doc out of the old seed's reach.
  const rekeyed: string[] = [];
  for (const { name, keys, handle, onRelay } of ready) {
    try {
      const snapshot = await keys.rekeyAfterIdentityRotation(onRelay);
      if (snapshot && handle) {
        await handle.replaceBySnapshot();
        await keys.requireCurrentEpoch();
      }
      // A blob shared with us: a head signed by the new key tells its owner, at its next catch-up,
      // to follow the rotation (seal the keys to our new box key). Best effort: our envelopes
      // under the new key tell it too.
      if (!keys.isOwner) await keys.exchangeHeads().catch(() => undefined);
      rekeyed.push(name);
    } catch (error) {
      fail(name, error);
    }
  }
  await Promise.allSettled(docs.map((d) => d.handle?.release()));
  return { recoveryPhrase, rekeyed, failed };
}

/** How long a doc may take to catch up before the rotation gives up on it. */
const CATCH_UP_MS = 30_000;

/**
 * Waits until `handle` caught up with the relay: true; false when the relay does not have the
 * doc (an encrypted blob created but never written: nothing there to replace). Unavailable when
 * it neither syncs nor turns out absent in time (offline).
 */
async function caughtUp(handle: RotatingDoc): Promise<boolean> {
  let synced = false;
  handle.whenSynced.then(
    () => {
      synced = true;
    },
    () => undefined,
  );
  for (let waited = 0; waited < CATCH_UP_MS; waited += 50) {
    if (synced) return true;
    if (handle.waiting) return false;
    await Promise.race([handle.whenSynced, new Promise((resolve) => setTimeout(resolve, 50))]);
  }
  if (synced) return true;
  throw new SyncError('Unavailable', 'the document did not catch up with the relay in time');
}

/**
 * After the rotation request failed: whether the relay registered the new keys anyway (an answer
 * lost on the way back), kept the old ones (`refused`), or cannot be asked (`unknown`).
 */
async function registeredNow(
  ctx: IdentityRotationContext,
  next: CryptoIdentity,
): Promise<'rotated' | 'refused' | 'unknown'> {
  try {
    const keys = await ctx.api.userKeys(ctx.userId);
    return keys && sameBytes(keys.signPublicKey, next.signPublicKey) ? 'rotated' : 'refused';
  } catch {
    return 'unknown';
  }
}

/**
 * The encrypted docs this user holds keys for: those on this device, its private docs on the
 * relay, and the encrypted blobs it owns on the relay (also those this device never opened: the
 * owner's grant to itself opens them).
 */
async function docsHeld(ctx: IdentityRotationContext): Promise<string[]> {
  const names = new Set<string>();
  for (const { key } of await ctx.kv.list(KV_TABLES.keys, 'doc:')) names.add(key.slice('doc:'.length));
  for (const key of await ctx.api.privateDocKeys(ctx.userId)) names.add(`USER_PRIVATE/${ctx.userId}/${key}`);
  for (const blobId of await ctx.api.ownedEncryptedBlobs()) names.add(`blob/${blobId}`);
  return [...names].filter((name) => {
    try {
      const address = parseDocName(name);
      return (
        address.kind === 'blob' || (address.scope === 'USER_PRIVATE' && address.namespace === ctx.userId)
      );
    } catch {
      return false;
    }
  });
}

/** Thrown for a client that cannot rotate: not registered, or a custom cipher. */
export function cannotRotate(reason: string): SyncError {
  return new SyncError('BadRequest', `identity rotation needs ${reason}`);
}
