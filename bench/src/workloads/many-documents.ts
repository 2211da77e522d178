import type * as Y from 'yjs';
import { MuxClient, type MuxProtocol } from '../driver/mux-client.ts';
import { settledRss } from '../driver/settled-rss.ts';
import { SyncClient } from '../driver/sync-client.ts';
import { now, pool, sleep } from '../driver/time.ts';
import { forEachPeer, row, type Workload, withPeer } from '../driver/workload.ts';
import type { MetricRow } from '../report.ts';
import type { Peer, PeerName } from '../servers/peer.ts';

/** What one peer measured. */
interface ManyDocsResult {
  /** Settled (see {@link settledRss}), as is `evictedRss`. */
  readonly idleRss: number;
  /** Read {@link SETTLE_MS} after the last document left memory. */
  readonly earlyEvictedRss: number;
  readonly evictedRss: number;
  /** From the last eviction to the settled reading, in s (its last 10 s are the check that it held still). */
  readonly settleSeconds: number;
  readonly touchSeconds: number;
  readonly evictSeconds: number;
  readonly resubscribeMs: number;
  readonly resubscribedCorrectly: number;
}

const MIB = 2 ** 20;
/** Multiplexed sockets (each with its own key on our relay) the touch phase spreads over. */
const TOUCH_SOCKETS = 4;
/** Documents in flight per socket while touching. */
const TOUCH_WINDOW = 64;
/** Per-document sockets opened at once (y-websocket, which has no multiplexing). */
const SOCKET_CONCURRENCY = 64;
/** How long a resubscribed document may take to show its text before it counts as wrong. */
const CONTENT_TIMEOUT_MS = 30_000;
/** Time every server gets after its documents left memory, before the early RSS reading. */
const SETTLE_MS = 3_000;

/** Document `i`'s name: a PUBLIC_RW document on our relay, any name to the peers. */
function docName(i: number): string {
  return `PUBLIC_RW/_/bench-many-${i}`;
}

/** The text document `i` holds after its one write. */
function textOf(i: number): string {
  return `doc ${i}`;
}

function muxProtocol(peer: Peer): MuxProtocol | null {
  if (peer.name === 'scopesync') return 'scopesync';
  if (peer.name === 'hocuspocus') return 'hocuspocus';
  return null;
}

/** The URL of one multiplexed socket: our `/sync?key=`, Hocuspocus's root. */
async function muxUrl(peer: Peer, device: string): Promise<string> {
  if (peer.name === 'hocuspocus') return peer.docUrl('');
  const key = await peer.register(device);
  return `${peer.url.replace(/^http/, 'ws')}/sync${key ? `?key=${encodeURIComponent(key)}` : ''}`;
}

/** Opens, writes once and closes every document; resolves once each write was acknowledged. */
async function touchAll(peer: Peer, docs: number, deadlineMs: number): Promise<void> {
  const protocol = muxProtocol(peer);
  if (protocol === null) {
    // y-websocket: one socket per document. It acknowledges nothing; frames on one socket are
    // handled in order, so the update is applied before the close that follows it.
    await pool(docs, SOCKET_CONCURRENCY, deadlineMs, async (i) => {
      const client = await SyncClient.open({
        url: peer.docUrl(docName(i)),
        docName: docName(i),
        framing: peer.framing,
      });
      client.doc.getText('t').insert(0, textOf(i));
      await client.close();
    });
    return;
  }
  await Promise.all(
    Array.from({ length: TOUCH_SOCKETS }, async (_, s) => {
      const client = await MuxClient.open(await muxUrl(peer, `bench-many-touch-${s}`), protocol);
      try {
        const mine = Array.from(
          { length: Math.ceil((docs - s) / TOUCH_SOCKETS) },
          (_, k) => s + k * TOUCH_SOCKETS,
        );
        await pool(mine.length, TOUCH_WINDOW, deadlineMs, async (k) => {
          const name = docName(mine[k]!);
          await client.subscribe(name);
          await client.write(name, (doc) => doc.getText('t').insert(0, textOf(mine[k]!)));
          await client.unsubscribe(name);
        });
      } finally {
        await client.close();
      }
    }),
  );
}

/** Our relay's count of documents in memory (GET /metrics), or null where there is none. */
async function openDocs(peer: Peer): Promise<number | null> {
  if (peer.name !== 'scopesync') return null;
  const text = await (await fetch(`${peer.url}/metrics`)).text();
  const match = /^scopesync_sync_open_docs(?:\{\})? (\d+)/m.exec(text);
  return match ? Number(match[1]) : null;
}

/** Waits until the server holds no document in memory (where it says), bounded by `timeoutMs`. */
async function waitForEviction(peer: Peer, timeoutMs: number): Promise<void> {
  const end = now() + timeoutMs;
  for (;;) {
    const open = await openDocs(peer);
    if (open === null || open === 0) return;
    if (now() > end) throw new Error(`${open} documents still in memory after ${timeoutMs} ms`);
    await sleep(250);
  }
}

/**
 * Resolves true once `doc`'s text is `text`, false after `timeoutMs`. y-websocket answers
 * SyncStep1 before it has read the document from y-leveldb (its content follows as an
 * update), so "synced" alone would stop the clock early for it.
 */
function untilText(doc: Y.Doc, text: string, timeoutMs: number): Promise<boolean> {
  const holds = (): boolean => doc.getText('t').toString() === text;
  if (holds()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const check = (): void => {
      if (!holds()) return;
      clearTimeout(timer);
      doc.off('afterTransaction', check);
      resolve(true);
    };
    const timer = setTimeout(() => {
      doc.off('afterTransaction', check);
      resolve(false);
    }, timeoutMs);
    doc.on('afterTransaction', check);
  });
}

/** One client opens the docs at `indices` (empty locally); returns ms until all hold their text, and how many do. */
async function resubscribe(peer: Peer, indices: readonly number[]): Promise<{ ms: number; correct: number }> {
  const protocol = muxProtocol(peer);
  const url = protocol === null ? '' : await muxUrl(peer, 'bench-many-resubscribe');
  const started = now();
  if (protocol === null) {
    const clients: SyncClient[] = [];
    const held = await pool(indices.length, SOCKET_CONCURRENCY, 120_000, async (k) => {
      const i = indices[k]!;
      const client = await SyncClient.open({
        url: peer.docUrl(docName(i)),
        docName: docName(i),
        framing: peer.framing,
      });
      clients.push(client);
      return untilText(client.doc, textOf(i), CONTENT_TIMEOUT_MS);
    });
    const ms = now() - started;
    await pool(clients.length, 256, 60_000, (k) => clients[k]!.close());
    return { ms, correct: held.filter(Boolean).length };
  }
  const client = await MuxClient.open(url, protocol);
  try {
    const held = await Promise.all(
      indices.map(async (i) => {
        await client.subscribe(docName(i));
        return untilText(client.doc(docName(i))!, textOf(i), CONTENT_TIMEOUT_MS);
      }),
    );
    return { ms: now() - started, correct: held.filter(Boolean).length };
  } finally {
    await client.close();
  }
}

async function measure(
  peer: Peer,
  cfg: { docs: number; resubscribe: number; docIdleMs: number },
  log: (message: string) => void,
): Promise<ManyDocsResult> {
  const settleLog = (message: string): void => log(`many-documents: ${message}`);
  const idleRss = (await settledRss(peer, settleLog)).bytes;
  const touchStarted = now();
  await touchAll(peer, cfg.docs, Math.max(120_000, cfg.docs * 60));
  const touchSeconds = (now() - touchStarted) / 1000;
  log(`many-documents: ${peer.name} touched ${cfg.docs} docs in ${touchSeconds.toFixed(1)} s`);
  const evictStarted = now();
  await waitForEviction(peer, cfg.docIdleMs + 60_000);
  const evictSeconds = (now() - evictStarted) / 1000;
  await sleep(SETTLE_MS);
  const earlyEvictedRss = await peer.rss();
  const settled = await settledRss(peer, settleLog);
  // Spread over the whole range, so old and recent documents are both reloaded.
  const step = cfg.docs / cfg.resubscribe;
  const indices = Array.from({ length: cfg.resubscribe }, (_, k) => Math.floor(k * step));
  const { ms, correct } = await resubscribe(peer, indices);
  return {
    idleRss,
    earlyEvictedRss,
    evictedRss: settled.bytes,
    settleSeconds: (SETTLE_MS + settled.afterMs) / 1000,
    touchSeconds,
    evictSeconds,
    resubscribeMs: ms,
    resubscribedCorrectly: correct,
  };
}

/**
 * Many documents: `docs` documents each written once (a few characters) and closed, then
 * left alone until the server unloaded them (our relay after its `docs.idleMs`; y-websocket
 * and Hocuspocus on the last close). The server's RSS then says what an idle document costs
 * once evicted; then one client resubscribes to `resubscribe` of them over ONE multiplexed
 * socket (ours: /sync; Hocuspocus: its document-name-prefixed protocol, as one
 * HocuspocusProviderWebsocket shared by many providers) — y-websocket has no multiplexing and
 * opens one socket per document.
 */
export const manyDocuments: Workload = {
  id: 'many-documents',
  title: 'Many documents (touched once, evicted, resubscribed)',
  async run(ctx) {
    const cfg = ctx.config.manyDocs;
    const outcomes = await forEachPeer(ctx, 'many-documents', (name: PeerName) =>
      withPeer(ctx, name, (peer) => measure(peer, cfg, ctx.log), undefined, { docIdleMs: cfg.docIdleMs }),
    );
    const n = cfg.docs.toLocaleString('en-US');
    const r = cfg.resubscribe.toLocaleString('en-US');
    const rows: MetricRow[] = [
      row(outcomes, 'server RSS idle, before any document', 'MiB', 'lower', (v) => v.idleRss / MIB),
      row(
        outcomes,
        `server RSS ${SETTLE_MS / 1000} s after ${n} docs touched and evicted`,
        'MiB',
        'lower',
        (v) => v.earlyEvictedRss / MIB,
      ),
      row(
        outcomes,
        `server RSS after ${n} docs touched and evicted, settled`,
        'MiB',
        'lower',
        (v) => v.evictedRss / MIB,
      ),
      row(
        outcomes,
        'time from the last eviction until the RSS held still for 10 s',
        's',
        null,
        (v) => v.settleSeconds,
      ),
      row(
        outcomes,
        'RSS growth after eviction, per 1,000 docs (settled)',
        'MiB',
        'lower',
        (v) => (v.evictedRss - v.idleRss) / MIB / (cfg.docs / 1000),
      ),
      row(outcomes, `time to resubscribe to ${r} evicted docs`, 'ms', 'lower', (v) => v.resubscribeMs),
      row(outcomes, 'documents resubscribed correctly', 'docs', 'higher', (v) => v.resubscribedCorrectly),
      row(
        outcomes,
        `time to touch ${n} docs (write one each, acked where the server acks)`,
        's',
        null,
        (v) => v.touchSeconds,
      ),
    ];
    return {
      id: 'many-documents',
      title: this.title,
      rows,
      notes: [
        `${n} documents, each opened, given one write of a few characters (a Yjs text insert) and closed; then idle until the server unloaded them, plus ${SETTLE_MS / 1000} s, and RSS read after a full GC; then read again every 2 s until the readings of 10 s lie within 1 MiB (at most 60 s): the settled figure, and the idle one is read the same way. V8 gives back the young generation it grew under load only once its memory reducer finds the process idle, at a time of each server's own, so the early reading measures that timing as much as what an evicted document costs. scopesync: over ${TOUCH_SOCKETS} multiplexed sockets (one key each), subscribe → tracked update → ack → unsubscribe, ${TOUCH_WINDOW} docs in flight per socket; its relay runs with docs.idleMs = ${cfg.docIdleMs} ms for this workload (default 30 s) and "evicted" means its scopesync_sync_open_docs gauge read 0. Hocuspocus: the same over ${TOUCH_SOCKETS} of its multiplexed sockets (auth → update → SyncStatus → CLOSE); it stores and unloads a document on its last close (unloadImmediately, stock). y-websocket: one socket per document (${SOCKET_CONCURRENCY} at a time), no ack; it unloads on the last close.`,
        `Resubscribe: one client with none of the ${r} documents locally (spread over the whole range) opens them all at once and the clock stops when each holds the text written to it (after its SyncStep2 and, ours, its permission; y-websocket answers SyncStep1 before it has read the document from y-leveldb, so its content can come later as an update); a document whose text is not there within 30 s counts as wrong. scopesync and Hocuspocus: ONE multiplexed socket (ours: /sync, subscribe + SyncStep1 per doc, the relay's SyncStep1 answered as our client does; Hocuspocus: auth + SyncStep1 per doc, as ${r} HocuspocusProviders on one HocuspocusProviderWebsocket send). y-websocket has no multiplexing: ${r} sockets, ${SOCKET_CONCURRENCY} handshakes at a time — not like for like.`,
        `The client paces its frames by a token bucket (${MuxClient.BURST} burst, ${MuxClient.RATE}/s), under our relay's per-socket limit (4,000 burst, 2,000/s), for both multiplexed servers.`,
      ],
      details: outcomes,
    };
  },
};
