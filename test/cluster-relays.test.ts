import { randomUUID } from 'node:crypto';
import { createClient, memoryClientStore } from '@scopesync/client';
import { deriveIdentity, generateRootSeed, ready } from '@scopesync/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import { b64, proofOf } from './support/key-registration.ts';
import { runCli } from './support/relay-cli.ts';
import { type ClusterRelay, type RelayCluster, startCluster } from './support/relay-cluster.ts';
import { DocClient, MuxSocket, update } from './support/sync-sockets.ts';

// Several relay processes on one PostgreSQL database, fanned out through Redis (the scale-out
// issue): any relay serves any document, and everything holds across relays as on one.
// Needs PostgreSQL 15 and Redis 7 on 127.0.0.1 (.ci/run starts them).

let cluster: RelayCluster;
let relays: ClusterRelay[];
beforeAll(async () => {
  cluster = await startCluster(3);
  relays = cluster.relays;
}, 120_000);
afterAll(() => cluster?.close(), 60_000);

async function register(relay: ClusterRelay, deviceName = `d-${randomUUID().slice(0, 8)}`) {
  const answer = await relay.api('POST', '/keys', { body: { device_name: deviceName } });
  expect(answer.status).toBe(200);
  return { key: answer.json.key as string, userId: answer.json.user_id as string };
}

function text(doc: Y.Doc): string {
  return doc.getText('t').toString();
}

/** Waits until `check` holds (polling; bounded). */
async function eventually(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`not within ${ms} ms: ${what}`);
}

describe('several relays on one PostgreSQL database, through Redis', () => {
  it('a stock y-websocket client and our client on different relays converge; a late joiner on a third gets it all', async () => {
    const alice = await register(relays[0] as ClusterRelay);
    const doc = `PUBLIC_RW/_/pad-${randomUUID()}`;
    const stock = new DocClient(relays[0] as ClusterRelay, doc, alice.key);
    const ours = await createClient({
      url: (relays[1] as ClusterRelay).url,
      deviceName: 'ours',
      WebSocket,
      store: memoryClientStore(),
    });
    try {
      await stock.synced();
      const handle = ours.doc(doc);
      await handle.whenSynced;
      stock.doc.getText('t').insert(0, 'stock ');
      await handle.transact((d) => d.getText('t').insert(0, 'ours '));
      await handle.whenAcked();
      await eventually(
        'both see both edits',
        () => text(stock.doc).includes('ours') && text(handle.doc).includes('stock'),
      );
      expect(text(stock.doc)).toBe(text(handle.doc));
      const late = new DocClient(relays[2] as ClusterRelay, doc, alice.key);
      try {
        await late.synced();
        await eventually('the late joiner has the whole document', () => text(late.doc) === text(stock.doc));
      } finally {
        late.destroy();
      }
      // /metrics shows the traffic between relays and the reads of the store for what one missed.
      const metrics = await (await fetch(`${(relays[1] as ClusterRelay).url}/metrics`)).text();
      expect(metrics).toMatch(/^scopesync_cluster_events_sent_total\{type="doc-committed"\} [1-9]/m);
      expect(metrics).toMatch(/^scopesync_cluster_events_received_total\{type="doc-committed"\} [1-9]/m);
      expect(metrics).toMatch(/^scopesync_cluster_messages_dropped_total 0$/m);
      expect(metrics).toMatch(/^scopesync_feed_catchups_total \d+$/m);
      expect(metrics).toMatch(/^scopesync_feed_catchup_entries_total \d+$/m);
    } finally {
      stock.destroy();
      await ours.close();
    }
  });

  it('narrowing holds across relays: a reader on another relay never receives a draft made owner-read', async () => {
    const owner = await register(relays[0] as ClusterRelay);
    const reader = await register(relays[1] as ClusterRelay);
    const doc = `USER_PUBLIC/${owner.userId}/note-${randomUUID().slice(0, 8)}`;
    const created = await (relays[0] as ClusterRelay).api(
      'POST',
      `/userdata/${owner.userId}/USER_PUBLIC/${doc.split('/')[2]}`,
      {
        key: owner.key,
        body: { value: { text: 'public' } },
      },
    );
    expect(created.status).toBe(200);
    const watcher = await MuxSocket.open(relays[1] as ClusterRelay, reader.key);
    await watcher.prepareFence();
    expect((await watcher.subscribe(doc)).access).toBe('read');
    const writer = await MuxSocket.open(relays[0] as ClusterRelay, owner.key);
    try {
      expect((await writer.subscribe(doc, { read: 1 })).access).toBe('read-write');
      const answer = await writer.write(doc, update('draft', 'SECRET-DRAFT'));
      expect(answer.type).toBe('ack');
      await eventually('the reader lost the document', () => {
        const access = watcher.lastPermission(doc)?.access;
        return access === 'none' || access === 'waiting';
      });
      await watcher.fence();
      expect(watcher.framesCarrying('SECRET-DRAFT')).toEqual([]);
    } finally {
      writer.close();
      watcher.close();
    }
  });

  it('revoking a share, a key or a level closes or narrows sockets on every relay within a second', async () => {
    const owner = await register(relays[0] as ClusterRelay);
    const sharee = await register(relays[0] as ClusterRelay);
    const blob = `board-${randomUUID()}`;
    const doc = `blob/${blob}`;
    const put = await (relays[0] as ClusterRelay).api('PUT', `/blob/${blob}`, { key: owner.key, body: 'v1' });
    expect(put.status).toBe(200);
    const shared = await (relays[0] as ClusterRelay).api('POST', `/share/${blob}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_write' },
    });
    expect(shared.status).toBe(200);
    const onTwo = await MuxSocket.open(relays[2] as ClusterRelay, sharee.key);
    expect((await onTwo.subscribe(doc)).access).toBe('read-write');
    // A downgrade on relay 0 reaches the socket on relay 2.
    await (relays[0] as ClusterRelay).api('POST', `/share/${blob}`, {
      key: owner.key,
      body: { user_id: sharee.userId, access_level: 'read_only' },
    });
    await eventually('read_only on relay 2', () => onTwo.lastPermission(doc)?.access === 'read', 1500);
    // The revocation too.
    const revoked = await (relays[1] as ClusterRelay).api('DELETE', `/share/${blob}/${sharee.userId}`, {
      key: owner.key,
    });
    expect(revoked.status).toBe(204);
    await eventually('access none on relay 2', () => onTwo.lastPermission(doc)?.access === 'none', 1500);
    onTwo.close();

    // A revoked API key closes its sockets on other relays with 4401.
    const other = await register(relays[1] as ClusterRelay);
    const socket = await MuxSocket.open(relays[2] as ClusterRelay, other.key);
    const gone = await (relays[0] as ClusterRelay).api('DELETE', `/keys/${other.key}`, { key: other.key });
    expect(gone.status).toBe(204);
    expect((await socket.closed).code).toBe(4401);

    // A level set by the CLI (through Redis) narrows a moderator's sockets at once.
    const user = await register(relays[0] as ClusterRelay);
    const mod = await register(relays[0] as ClusterRelay);
    const promoted = await cluster.cli(['level', 'set', mod.userId, 'moderator']);
    expect(promoted.code).toBe(0);
    const draft = `USER_PUBLIC/${user.userId}/draft`;
    const modSocket = await MuxSocket.open(relays[1] as ClusterRelay, mod.key);
    expect((await modSocket.subscribe(draft)).access).toBe('read-write'); // a moderator may create it
    const demoted = await cluster.cli(['level', 'set', mod.userId, 'user']);
    expect(demoted.code).toBe(0);
    await eventually(
      'the demoted moderator waits or lost it',
      () => {
        const access = modSocket.lastPermission(draft)?.access;
        return access === 'none' || access === 'read';
      },
      1500,
    );
    modSocket.close();
  });

  it('a relay killed during a burst of acked writes loses none of them; its clients converge elsewhere', async () => {
    const victim = await cluster.start();
    const writer = await register(victim);
    const doc = `PUBLIC_RW/_/burst-${randomUUID()}`;
    const socket = await MuxSocket.open(victim, writer.key);
    expect((await socket.subscribe(doc)).access).toBe('read-write');
    const local = new Y.Doc();
    const acked: string[] = [];
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      const before = Y.encodeStateVector(local);
      local.getText('t').insert(local.getText('t').length, `<${i}>`);
      const ref = socket.ref();
      socket.send(doc, { type: 'tracked-update', ref, update: Y.encodeStateAsUpdate(local, before) });
      sends.push(
        socket
          .waitFor(`ack ${ref}`, (f) => f.message.type === 'ack' && f.message.ref === ref)
          .then(
            () => {
              acked.push(`<${i}>`);
            },
            () => undefined,
          ),
      );
      // Killed mid-burst, once some writes were acked: what it acked must survive, the rest may not.
      if (i === 150) await eventually('some acks', () => acked.length > 0);
      if (i === 160) void victim.signal('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await Promise.all(sends);
    await victim.cli.finished;
    expect(acked.length).toBeGreaterThan(0);
    // Another relay serves every acked write from PostgreSQL.
    const reader = await register(relays[0] as ClusterRelay);
    const survivor = new DocClient(relays[0] as ClusterRelay, doc, reader.key);
    try {
      await survivor.synced();
      const seen = text(survivor.doc);
      expect(acked.filter((token) => !seen.includes(token))).toEqual([]);
    } finally {
      survivor.destroy();
    }
  });

  it('delivery survives Redis killing the relays’ subscriptions and pausing: live again, and catches up', async () => {
    const alice = await register(relays[0] as ClusterRelay);
    const doc = `PUBLIC_RW/_/redis-${randomUUID()}`;
    const writer = new DocClient(relays[0] as ClusterRelay, doc, alice.key);
    const reader = new DocClient(relays[1] as ClusterRelay, doc, alice.key);
    try {
      await Promise.all([writer.synced(), reader.synced()]);
      expect(await cluster.killSubscriptions()).toBeGreaterThan(0);
      writer.doc.getText('t').insert(0, 'after-kill ');
      await eventually('the edit reaches the other relay after the kill', () =>
        text(reader.doc).includes('after-kill'),
      );
      const admin = (await import('@redis/client')).createClient({
        url: process.env.SCOPESYNC_REDIS_URL ?? 'redis://127.0.0.1:6379',
      });
      await admin.connect();
      try {
        await admin.sendCommand(['CLIENT', 'PAUSE', '1000', 'WRITE']);
      } finally {
        await admin.close();
      }
      writer.doc.getText('t').insert(0, 'during-pause ');
      await eventually('the edit made during the pause arrives', () =>
        text(reader.doc).includes('during-pause'),
      );
      expect(text(reader.doc)).toBe(text(writer.doc));
    } finally {
      writer.destroy();
      reader.destroy();
    }
  });

  it('a relay left behind (stopped while the others write) catches up and never writes its stale copy back', async () => {
    const alice = await register(relays[0] as ClusterRelay);
    const doc = `PUBLIC_RW/_/behind-${randomUUID()}`;
    const behind = await cluster.start();
    const lagging = new DocClient(behind, doc, alice.key);
    const a = new DocClient(relays[0] as ClusterRelay, doc, alice.key);
    const b = new DocClient(relays[1] as ClusterRelay, doc, alice.key);
    try {
      await Promise.all([lagging.synced(), a.synced(), b.synced()]);
      lagging.doc.getText('t').insert(0, 'base ');
      await eventually(
        'all have the base',
        () => text(a.doc).includes('base') && text(b.doc).includes('base'),
      );
      await behind.signal('SIGSTOP');
      for (let i = 0; i < 20; i++) {
        (i % 2 === 0 ? a : b).doc.getText('t').insert(0, `e${i} `);
      }
      await eventually(
        'the two live relays agree',
        () => text(a.doc) === text(b.doc) && text(a.doc).includes('e19'),
      );
      await behind.signal('SIGCONT');
      await eventually('the relay left behind caught up', () => text(lagging.doc) === text(a.doc), 15_000);
      // The database still holds everything: a fresh client of a live relay sees it all.
      const fresh = new DocClient(relays[2] as ClusterRelay, doc, alice.key);
      try {
        await fresh.synced();
        await eventually('a fresh client sees every edit', () => text(fresh.doc) === text(a.doc));
      } finally {
        fresh.destroy();
      }
    } finally {
      lagging.destroy();
      a.destroy();
      b.destroy();
    }
  });

  it('audit entries written by three processes verify as one chain', async () => {
    const target = await register(relays[0] as ClusterRelay);
    const path = `/userdata/${target.userId}/USER_PUBLIC/profile`;
    expect(
      (await (relays[0] as ClusterRelay).api('POST', path, { key: target.key, body: { value: { n: 1 } } }))
        .status,
    ).toBe(200);
    const readers = await Promise.all(relays.slice(0, 3).map((r) => register(r)));
    // Cross-user reads on every relay at once: each appends an audit entry to one chain.
    await Promise.all(
      readers.flatMap((reader, i) =>
        Array.from({ length: 5 }, () => (relays[i] as ClusterRelay).api('GET', path, { key: reader.key })),
      ),
    );
    const verified = await cluster.cli(['audit', 'verify']);
    expect(verified.stderr).toBe('');
    expect(verified.code).toBe(0);
    expect(Number(/ok (\d+) entries/.exec(verified.stdout)?.[1])).toBeGreaterThanOrEqual(15);
    // Keyed by the one key all relays share, and checked against the anchor they keep.
    expect(verified.stdout).toMatch(/\(anchored at seq \d+, /);
  });

  it('a registration challenge issued by one relay is redeemed at another, once', async () => {
    await ready();
    const identity = deriveIdentity(generateRootSeed());
    const issued = await (relays[0] as ClusterRelay).api('POST', '/keys/challenge');
    expect(issued.status).toBe(200);
    // One deployment, one relay id: every relay of the cluster publishes the same.
    const other = await (relays[1] as ClusterRelay).api('POST', '/keys/challenge');
    expect(other.json.relay_id).toBe(issued.json.relay_id);
    const body = {
      device_name: 'phone',
      sign_pk: b64(identity.signPublicKey),
      box_pk: b64(identity.boxPublicKey),
      challenge: issued.json.challenge,
      proof: proofOf(identity, issued.json.challenge, { relayId: issued.json.relay_id }),
    };
    const registered = await (relays[1] as ClusterRelay).api('POST', '/keys', { body });
    expect(registered.status).toBe(200);
    // Spent: the same proof at a third relay is a replay.
    const replay = await (relays[2] as ClusterRelay).api('POST', '/keys', { body });
    expect(replay.status).toBe(403);
  });

  it('an engine that cannot be reached at start is one line on stderr and a non-zero exit', async () => {
    const noDb = await runCli(['start', '--port', '0', '--database-url', 'postgres://root@127.0.0.1:1/test']);
    expect(noDb.code).not.toBe(0);
    expect(noDb.stderr.trim().split('\n')).toHaveLength(1);
    expect(noDb.stderr).toMatch(/PostgreSQL/);
    const noRedis = await runCli([
      'start',
      '--port',
      '0',
      '--database-url',
      'postgres://root@127.0.0.1:5432/test',
      '--database-schema',
      cluster.schema,
      '--redis-url',
      'redis://127.0.0.1:1',
    ]);
    expect(noRedis.code).not.toBe(0);
    expect(noRedis.stderr.trim().split('\n')).toHaveLength(1);
    expect(noRedis.stderr).toMatch(/Redis/);
  });
});
