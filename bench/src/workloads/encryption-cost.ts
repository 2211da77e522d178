import { createClient, type DocHandle, memoryClientStore, type SyncClient } from '@scopesync/client';
import { WebSocket } from 'ws';
import { now, sleep, withTimeout } from '../driver/time.ts';
import { forEachPeer, row, type Workload, withPeer } from '../driver/workload.ts';
import type { MetricRow } from '../report.ts';
import type { Peer } from '../servers/peer.ts';

/** Sizes of the encryption-cost workload. */
export interface EncryptionCostConfig {
  /** Single-character edits the writer makes, each its own transaction (and envelope). */
  readonly edits: number;
  /** The client's `compactAfter`: local log merges and, for encrypted docs, relay snapshots. */
  readonly compactAfter: number;
  /** How long the reader may take to have every edit. */
  readonly timeoutMs: number;
}

/** A full run: 2,000 small edits, compaction after 100 entries (the client's default). */
const FULL: EncryptionCostConfig = { edits: 2000, compactAfter: 100, timeoutMs: 120_000 };
/** `--quick`: fewer edits, same compaction. */
const QUICK: EncryptionCostConfig = { edits: 500, compactAfter: 100, timeoutMs: 60_000 };

interface Measured {
  /** From the writer's first edit to the reader holding the last, ms. */
  readonly syncMs: number;
  /** Entries and bytes the relay keeps for the doc once compaction has run. */
  readonly storedEntries: number;
  readonly storedBytes: number;
}

interface Pair {
  readonly plain: Measured;
  readonly encrypted: Measured;
}

/**
 * The cost of end-to-end encryption in scopesync, as ratios against itself: the same edits
 * synced between two devices of one user through the relay, once in a plaintext doc
 * (`USER_PUBLIC`, Yjs updates the relay merges) and once in an end-to-end encrypted doc
 * (`USER_PRIVATE`: one signed XChaCha20-Poly1305 envelope per edit, the relay verifying each
 * signature, the client compacting the relay's log with an encrypted snapshot). Only scopesync
 * runs it: the peers have no end-to-end encryption to compare with.
 *
 * Register it in main.ts's WORKLOADS list (`encryptionCost`); `--only=encryption-cost` runs it alone.
 */
export const encryptionCost: Workload = {
  id: 'encryption-cost',
  title: 'Encryption cost (scopesync, private vs plaintext doc)',
  async run(ctx) {
    const settings = ctx.config.mode === 'quick' ? QUICK : FULL;
    const outcomes = await forEachPeer(
      ctx,
      'encryption cost',
      async (name) =>
        // A fresh relay for each, so its whole stored log is that one doc's.
        ({
          plain: await withPeer(ctx, name, (peer) => measure(peer, 'USER_PUBLIC', settings)),
          encrypted: await withPeer(ctx, name, (peer) => measure(peer, 'USER_PRIVATE', settings)),
        }) satisfies Pair,
      ctx.peers.filter((p) => p === 'scopesync'),
    );
    const rows: MetricRow[] = [
      row(outcomes, `sync ${settings.edits} edits, plaintext doc`, 'ms', 'lower', (m) => m.plain.syncMs),
      row(outcomes, `sync ${settings.edits} edits, private doc`, 'ms', 'lower', (m) => m.encrypted.syncMs),
      row(
        outcomes,
        'sync time, private ÷ plaintext',
        '×',
        'lower',
        (m) => m.encrypted.syncMs / m.plain.syncMs,
      ),
      row(outcomes, 'stored after compaction, plaintext doc', 'bytes', 'lower', (m) => m.plain.storedBytes),
      row(outcomes, 'stored after compaction, private doc', 'bytes', 'lower', (m) => m.encrypted.storedBytes),
      row(
        outcomes,
        'stored bytes, private ÷ plaintext',
        '×',
        'lower',
        (m) => m.encrypted.storedBytes / m.plain.storedBytes,
      ),
      row(outcomes, 'relay log entries, private doc', 'entries', 'lower', (m) => m.encrypted.storedEntries),
    ];
    return {
      id: 'encryption-cost',
      title: 'Encryption cost (scopesync, private vs plaintext doc)',
      rows,
      notes: [
        `One writer device makes ${settings.edits} single-character edits as fast as it can (each awaited locally, not on the relay); the time runs until a second device of the same user (linked with the recovery phrase) holds them all. Same client code, same relay, same user: only the doc's scope differs.`,
        `Plaintext: USER_PUBLIC, Yjs updates the relay merges itself. Private: USER_PRIVATE, one signed envelope per edit (the relay verifies each signature), the relay's log replaced by an encrypted snapshot after every ${settings.compactAfter} entries. Stored = the relay's document log (each doc on a relay of its own), read from its SQLite file once compaction has settled.`,
      ],
      details: Object.fromEntries(
        Object.entries(outcomes).map(([name, o]) => [name, o.ok ? o.value : { error: o.error }]),
      ),
    };
  },
};

async function measure(
  peer: Peer,
  scope: 'USER_PUBLIC' | 'USER_PRIVATE',
  settings: EncryptionCostConfig,
): Promise<Measured> {
  const common = { url: peer.url, WebSocket, compactAfter: settings.compactAfter } as const;
  const writer = await createClient({
    ...common,
    deviceName: `bench-${scope}-writer`,
    store: memoryClientStore(),
  });
  let reader: SyncClient | undefined;
  try {
    const recoveryPhrase = await writer.encryption.exportRecoveryPhrase();
    reader = await createClient({
      ...common,
      deviceName: `bench-${scope}-reader`,
      recoveryPhrase,
      store: memoryClientStore(),
    });
    const name = `${scope}/${writer.userId}/bench-encryption-cost`;
    const w = writer.doc(name);
    const r = reader.doc(name);
    await Promise.all([w.whenSynced, r.whenSynced]);
    const has = (h: DocHandle): number => h.doc.getText('t').length;
    const done = new Promise<void>((resolve) => {
      const check = (): void => {
        if (has(r) >= settings.edits) {
          stop();
          resolve();
        }
      };
      const stop = r.on('remote-update', check);
    });
    const started = now();
    for (let i = 0; i < settings.edits; i++) {
      await w.transact((d) => d.getText('t').insert(i, String.fromCharCode(97 + (i % 26))));
    }
    await withTimeout(done, settings.timeoutMs, `${scope}: the reader receiving ${settings.edits} edits`);
    const syncMs = now() - started;
    await w.whenAcked();
    // Let compaction settle: the relay merges plaintext logs when idle, clients snapshot
    // encrypted ones after their acks.
    const stored = await settle(peer);
    return { syncMs, storedEntries: stored.count, storedBytes: stored.bytes };
  } finally {
    await reader?.close();
    await writer.close();
  }
}

/** The relay's stored log once two reads 500 ms apart agree (compaction has finished). */
async function settle(peer: Peer): Promise<{ count: number; bytes: number }> {
  if (!peer.storedEntries) throw new Error(`${peer.name} does not report its stored log`);
  let last = { count: -1, bytes: -1 };
  for (let attempt = 0; attempt < 40; attempt++) {
    await sleep(500);
    const current = await peer.storedEntries();
    if (current.count === last.count && current.bytes === last.bytes) return current;
    last = { count: current.count, bytes: current.bytes };
  }
  return last;
}
