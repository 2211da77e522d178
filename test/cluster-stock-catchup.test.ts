import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Y from 'yjs';
import { type ClusterRelay, type RelayCluster, startCluster } from './support/relay-cluster.ts';
import { DocClient } from './support/sync-sockets.ts';

// Stock y-websocket clients never ask a relay again while connected: whatever their relay learns
// late (a catch-up from PostgreSQL after its Redis subscription was cut) must be pushed to them,
// including to one that joined while the relay was behind (chaos issue #16, finding 11).
// Needs PostgreSQL 15 and Redis 7 on 127.0.0.1 (.ci/run starts them).

let cluster: RelayCluster;
/** What the relays logged (errors only), shown when a check fails: a failed commit explains a lot. */
const logged: string[] = [];
let a: ClusterRelay;
let b: ClusterRelay;
beforeAll(async () => {
  cluster = await startCluster(2);
  [a, b] = cluster.relays as [ClusterRelay, ClusterRelay];
  for (const relay of [a, b])
    relay.cli.child.stderr?.on('data', (chunk: Buffer) => logged.push(String(chunk)));
}, 120_000);

afterAll(() => cluster?.close(), 60_000);

function text(doc: Y.Doc): string {
  return doc.getText('t').toString();
}

/** Waits until `check` holds (polling; bounded). */
async function eventually(what: () => string, check: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`not within ${ms} ms: ${what()}\nrelays logged: ${logged.join('').slice(-2000)}`);
}

describe('stock y-websocket clients on a relay that fell behind', () => {
  it('get what the relay catches up from the store, also one that joined while it was behind', async () => {
    const answer = await a.api('POST', '/keys', { body: { device_name: 'stock' } });
    expect(answer.status).toBe(200);
    const key = answer.json.key as string;
    const doc = `PUBLIC_RW/_/stock-${randomUUID()}`;
    const early = new DocClient(a, doc, key);
    const writer = new DocClient(b, doc, key);
    let late: DocClient | null = null;
    try {
      await Promise.all([early.synced(), writer.synced()]);
      writer.doc.getText('t').insert(0, 'before ');
      await eventually(
        () => 'the first edit crosses',
        () => text(early.doc).includes('before'),
      );
      // Cut the relays' subscriptions and write at once: what B publishes meanwhile is lost to A.
      expect(await cluster.killSubscriptions()).toBeGreaterThan(0);
      for (let i = 0; i < 6; i++) writer.doc.getText('t').insert(0, `cut${i} `);
      late = new DocClient(a, doc, key);
      await late.synced();
      writer.doc.getText('t').insert(0, 'after ');
      const joined = late;
      await eventually(
        () =>
          `both readers on A hold every edit: writer ${text(writer.doc)}, early ${text(early.doc)}, late ${text(joined.doc)}`,
        () => text(early.doc) === text(writer.doc) && text(joined.doc) === text(writer.doc),
      );
      for (let i = 0; i < 6; i++) expect(text(joined.doc)).toContain(`cut${i}`);
    } finally {
      early.destroy();
      writer.destroy();
      late?.destroy();
    }
  });
});
