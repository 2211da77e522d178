import { setImmediate as yieldToLoop } from 'node:timers/promises';
import * as Y from 'yjs';
import { closeClients, openClient } from '../driver/clients.ts';
import { now } from '../driver/time.ts';
import {
  type ConcurrentReplay,
  prepareConcurrent,
  prepareSequential,
  type SequentialReplay,
  tracePath,
} from '../driver/traces.ts';
import {
  forEachPeer,
  type PeerSettings,
  row,
  type Workload,
  type WorkloadContext,
  withPeer,
} from '../driver/workload.ts';
import type { MetricRow } from '../report.ts';
import type { Peer, PeerName } from '../servers/peer.ts';

const PAPER_DOC = 'PUBLIC_RW/_/bench-trace-paper';
const FRIENDS_DOC = 'PUBLIC_RW/_/bench-trace-friendsforever';
/** The writer pauses while more than this is queued on its socket. */
const SEND_BUFFER_LIMIT = 1 << 20;

interface PaperResult {
  readonly replaySeconds: number | 'timeout';
  readonly replayCorrect: boolean;
  readonly loadMs: number | 'timeout';
  readonly loadCorrect: boolean;
  readonly storedBytes: number | null;
  readonly storedEntries: { readonly count: number; readonly bytes: number } | null;
}

interface FriendsResult {
  readonly seconds: number | 'timeout';
  readonly pass: boolean;
}

/**
 * Workload 4: real editing traces through each server.
 * automerge-paper: one writer sends one update per keystroke, as fast as its socket
 * drains; replay time runs until a second client has applied the last one. Then the server
 * is restarted on its data and a fresh client loads the document.
 * friendsforever: two clients each send their agent's keystrokes at once, each waiting
 * only for the other's edits its next one was made on top of; both must end at endContent.
 */
/**
 * The replays send one frame per keystroke as fast as the server takes them (~20,000/s on one
 * socket), ten times our relay's default per-socket limit, which closes such a socket (4429):
 * with the default the workload would measure the limit, not the server. The peers have none.
 */
const TRACE_SETTINGS: PeerSettings = { maxFramesPerSecond: 1_000_000 };

export const editingTraces: Workload = {
  id: 'editing-traces',
  title: '4. Real editing traces',
  async run(ctx) {
    const rows: MetricRow[] = [];
    const notes: string[] = [
      'scopesync runs with its per-socket and per-caller frame rate limits raised to 1,000,000/s for both replays (defaults 2,000 and 10,000/s, over them a socket is closed with 4429): one replaying socket sends about 20,000 keystroke frames/s. Every other limit is at its default; the peers have no frame rate limit.',
    ];
    const details: Record<string, unknown> = {};
    const paperPath = tracePath('automerge-paper');
    if (paperPath === null) {
      notes.push(
        'automerge-paper skipped: ../shared/traces/automerge-paper.json.gz not found beside the checkout.',
      );
    } else {
      const replay = prepareSequential(paperPath, ctx.config.traces.paperOps);
      const label =
        replay.updates.length === replay.totalOps
          ? `all ${replay.totalOps.toLocaleString('en-US')} ops`
          : `first ${replay.updates.length.toLocaleString('en-US')} of ${replay.totalOps.toLocaleString('en-US')} ops (quick mode)`;
      const outcomes = await forEachPeer(ctx, 'automerge-paper', (name) => replayPaper(ctx, name, replay));
      rows.push(row(outcomes, `automerge-paper replay, ${label}`, 's', 'lower', (r) => r.replaySeconds));
      rows.push(row(outcomes, 'replayed doc correct', '', null, (r) => (r.replayCorrect ? 'pass' : 'FAIL')));
      rows.push(
        row(outcomes, 'fresh client loads final doc (after restart)', 'ms', 'lower', (r) => r.loadMs),
      );
      rows.push(row(outcomes, 'loaded doc correct', '', null, (r) => (r.loadCorrect ? 'pass' : 'FAIL')));
      rows.push(
        row(outcomes, 'stored on server', 'KiB', 'lower', (r) =>
          r.storedBytes === null ? 'n/a' : r.storedBytes / 1024,
        ),
      );
      rows.push(
        row(outcomes, 'stored ÷ Y.encodeStateAsUpdate', '×', 'lower', (r) =>
          r.storedBytes === null ? 'n/a' : r.storedBytes / replay.encodedBytes,
        ),
      );
      notes.push(
        `automerge-paper: ${label}, one update per keystroke; Y.encodeStateAsUpdate of the final doc is ${(replay.encodedBytes / 1024).toFixed(1)} KiB${replay.matchesEndContent ? ' and its text equals endContent' : ''}. Stored bytes are the server's files after a clean shutdown: scopesync's SQLite files, Hocuspocus's SQLite file, y-websocket's y-leveldb directory (YPERSISTENCE on).`,
      );
      const ours = outcomes.scopesync;
      if (ours?.ok && ours.value.storedEntries) {
        const { count, bytes } = ours.value.storedEntries;
        notes.push(
          `scopesync's document log after the replay: ${count} ${count === 1 ? 'entry' : 'entries'}, ${(bytes / 1024).toFixed(1)} KiB of entry data (the relay compacts plaintext logs with Y.mergeUpdates); the table's figure is the docs.sqlite file.`,
        );
      }
      details.automergePaper = { ops: replay.updates.length, encodedBytes: replay.encodedBytes, outcomes };
    }
    const friendsPath = tracePath('friendsforever');
    if (friendsPath === null) {
      notes.push(
        'friendsforever skipped: ../shared/traces/friendsforever.json.gz not found beside the checkout.',
      );
    } else {
      const replay = prepareConcurrent(friendsPath);
      const outcomes = await forEachPeer(ctx, 'friendsforever', (name) =>
        withPeer(
          ctx,
          name,
          (peer) => replayFriends(peer, replay, ctx.config.traces.replayTimeoutMs),
          undefined,
          TRACE_SETTINGS,
        ),
      );
      rows.push(row(outcomes, 'friendsforever, 2 clients at once', 's', 'lower', (r) => r.seconds));
      rows.push(row(outcomes, 'both clients end at endContent', '', null, (r) => (r.pass ? 'pass' : 'FAIL')));
      notes.push(
        `friendsforever: ${replay.agents[0].length.toLocaleString('en-US')} + ${replay.agents[1].length.toLocaleString('en-US')} keystrokes by two clients at once${replay.localMergeMatches ? '' : ' (WARNING: the local preparation does not reproduce endContent)'}.`,
      );
      details.friendsforever = outcomes;
    }
    return { id: this.id, title: this.title, rows, notes, details };
  },
};

async function replayPaper(
  ctx: WorkloadContext,
  name: PeerName,
  replay: SequentialReplay,
): Promise<PaperResult> {
  const timeoutMs = ctx.config.traces.replayTimeoutMs;
  const first = await ctx.startPeer(name, undefined, TRACE_SETTINGS);
  let replaySeconds: number | 'timeout';
  let replayCorrect: boolean;
  try {
    const writer = await openClient(first.peer, { docName: PAPER_DOC, sendOnly: true });
    const observer = await openClient(first.peer, { docName: PAPER_DOC });
    const start = now();
    const deadline = start + timeoutMs;
    for (let i = 0; i < replay.updates.length && now() < deadline; i++) {
      writer.sendRawUpdate(replay.updates[i]!);
      if (i % 256 === 255) {
        if (writer.bufferedAmount >= SEND_BUFFER_LIMIT)
          await writer.drain(SEND_BUFFER_LIMIT, deadline - now());
        else await yieldToLoop();
      }
    }
    const done = await observer.waitForClock(
      replay.writerId,
      replay.finalClock,
      Math.max(0, deadline - now()),
    );
    replaySeconds = done === null ? 'timeout' : (done - start) / 1000;
    replayCorrect = observer.doc.getText('text').toString() === replay.expectedText;
    await closeClients([writer, observer]);
  } finally {
    // A clean shutdown, so what the server keeps on disk is complete before it is measured.
    await first.peer.close({ flush: true });
  }
  const storedBytes = await first.peer.storedBytes();
  const storedEntries = (await first.peer.storedEntries?.()) ?? null;
  return withPeer(
    ctx,
    name,
    async (peer) => {
      const start = now();
      const fresh = await openClient(peer, { docName: PAPER_DOC }, timeoutMs);
      // Loaded means holding the writer's last edit: y-websocket answers SyncStep1 before
      // its y-leveldb load finishes and sends the stored state as a later update.
      const loaded = await fresh.waitForClock(
        replay.writerId,
        replay.finalClock,
        Math.max(0, timeoutMs - (now() - start)),
      );
      const loadMs = loaded === null ? Number.NaN : loaded - start;
      const loadCorrect = fresh.doc.getText('text').toString() === replay.expectedText;
      await fresh.close();
      return {
        replaySeconds,
        replayCorrect,
        loadMs: loaded === null ? 'timeout' : loadMs,
        loadCorrect,
        storedBytes,
        storedEntries,
      };
    },
    first.dataDir,
    TRACE_SETTINGS,
  );
}

async function replayFriends(
  peer: Peer,
  replay: ConcurrentReplay,
  timeoutMs: number,
): Promise<FriendsResult> {
  const clients = [
    await openClient(peer, { docName: FRIENDS_DOC }),
    await openClient(peer, { docName: FRIENDS_DOC }),
  ] as const;
  try {
    const start = now();
    const deadline = start + timeoutMs;
    const agent = async (a: 0 | 1): Promise<boolean> => {
      const client = clients[a];
      const otherId = replay.clientIds[1 - a]!;
      let sinceYield = 0;
      for (const { update, needsOtherClock } of replay.agents[a]) {
        const seen = await client.waitForClock(otherId, needsOtherClock, Math.max(0, deadline - now()));
        if (seen === null) return false;
        // Applied as a local edit: the client's update handler sends it to the server.
        Y.applyUpdate(client.doc, update, 'replay');
        if (++sinceYield === 64) {
          sinceYield = 0;
          await yieldToLoop();
        }
      }
      const [id0, id1] = replay.clientIds;
      const [c0, c1] = replay.finalClocks;
      const other = a === 0 ? [id1, c1] : [id0, c0];
      return (await client.waitForClock(other[0]!, other[1]!, Math.max(0, deadline - now()))) !== null;
    };
    const finished = await Promise.all([agent(0), agent(1)]);
    const seconds = finished.every(Boolean) ? (now() - start) / 1000 : 'timeout';
    const pass = clients.every((c) => c.doc.getText('text').toString() === replay.endContent);
    return { seconds, pass };
  } finally {
    await closeClients(clients);
  }
}
