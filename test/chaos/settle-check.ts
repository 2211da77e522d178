import { monitorEventLoopDelay } from 'node:perf_hooks';
import { privateItems, servedItems } from './relay-reads.ts';

// The soak's end check, in two parts: reading what the relays serve (retried, and complete or
// marked unread, so a read that failed never counts as loss) and saying why the check does not
// pass yet (counted by reason, with a few examples), so a settle that times out explains itself.

/** Attempts per relay read: the relay may close a socket under load (heartbeat, send budget). */
const READ_ATTEMPTS = 4;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads `doc` from `url` with `key`, retried with backoff; the last error when every attempt failed. */
export async function readWithRetry(url: string, key: string, doc: string): Promise<string[]> {
  let last: unknown;
  for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
    try {
      return await servedItems(url, key, doc);
    } catch (error) {
      last = error;
      await sleep(250 * 2 ** attempt);
    }
  }
  throw new Error(`${READ_ATTEMPTS} attempts: ${String(last)}`);
}

/** What one read of the relays found: per document the state (when every live relay answered). */
export interface RelayRead {
  /** Documents every live relay of the group served, with the first relay's state. */
  readonly state: Map<string, string[]>;
  /** Documents that could not be read, with why: not a loss, a failure of its own. */
  readonly unread: Map<string, string>;
  /** Documents whose relays serve different states. */
  readonly disagree: string[];
}

/** Reads every doc of `groups` from every live relay, a few at a time. */
export async function readRelays(
  groups: readonly { readonly key: string; readonly docs: readonly string[]; live(): { url: string }[] }[],
  concurrency = 6,
): Promise<RelayRead> {
  const read: RelayRead = { state: new Map(), unread: new Map(), disagree: [] };
  const jobs = groups.flatMap((g) => g.docs.map((doc) => ({ g, doc })));
  const worker = async (): Promise<void> => {
    for (let job = jobs.shift(); job !== undefined; job = jobs.shift()) {
      const { g, doc } = job;
      const relays = g.live();
      if (relays.length === 0) {
        read.unread.set(doc, 'no live relay');
        continue;
      }
      try {
        const states = await Promise.all(relays.map((relay) => readWithRetry(relay.url, g.key, doc)));
        const first = JSON.stringify(states[0]);
        if (states.some((s) => JSON.stringify(s) !== first)) read.disagree.push(doc);
        read.state.set(doc, states[0] as string[]);
      } catch (error) {
        read.unread.set(doc, String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return read;
}

/** A private doc as another device of its user reads it: its items, or why it could not be read. */
export async function readPrivate(
  url: string,
  user: Parameters<typeof privateItems>[1],
  doc: string,
  expected: () => string[],
): Promise<{ items: string[]; refused: string[] } | { error: string }> {
  let last: { items: string[]; refused: string[] } | { error: string } = { error: 'not read' };
  for (let attempt = 0; attempt < 5; attempt++) {
    const refused: string[] = [];
    last = await privateItems(url, user, doc, refused).then(
      (items) => ({ items, refused }),
      (error: unknown) => ({ error: String(error) }),
    );
    if ('items' in last && JSON.stringify(last.items) === JSON.stringify(expected())) break;
    await sleep(500);
  }
  return last;
}

/** One reason the check does not pass, with the line that shows it. */
export interface Blocker {
  readonly reason: string;
  readonly line: string;
}

/** "reason: count" for each reason, most first, then up to `examples` lines. */
export function summarize(blockers: readonly Blocker[], examples = 3): string {
  const counts = new Map<string, number>();
  for (const b of blockers) counts.set(b.reason, (counts.get(b.reason) ?? 0) + 1);
  const byCount = [...counts].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${r} ${n}`);
  const seen = new Set<string>();
  const picked: string[] = [];
  // One example per reason first, so a rare reason is not hidden behind a common one.
  for (const b of blockers)
    if (!seen.has(b.reason) && picked.length < examples) {
      seen.add(b.reason);
      picked.push(b.line);
    }
  return `${byCount.join(', ')}; e.g. ${picked.join(' | ')}`;
}

/**
 * The test process's event-loop lag: every client of the soak lives in this one process, and a
 * loop stalled for longer than the relay's heartbeat allows gets its sockets terminated.
 */
export function loopLag(): { maxMs(): number; reset(): void; stop(): void } {
  const h = monitorEventLoopDelay({ resolution: 20 });
  h.enable();
  return {
    maxMs: () => Math.round(h.max / 1e6),
    reset: () => h.reset(),
    stop: () => h.disable(),
  };
}
