import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditAnchorKeeper, loadOrCreateAuditKey, readAuditAnchor } from './audit-anchor.ts';
import { AuditLog } from './audit-log.ts';
import { MemoryRelayStore } from './memory-relay-store.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'scopesync-anchor-'));
  dirs.push(dir);
  const warnings: string[] = [];
  const key = loadOrCreateAuditKey(join(dir, 'audit.key'), (m) => warnings.push(m));
  const store = new MemoryRelayStore();
  const errors: string[] = [];
  const keeper = new AuditAnchorKeeper({
    store,
    key,
    file: join(dir, 'audit-anchor.json'),
    intervalMs: 60_000,
    log: (_level, message) => errors.push(message),
  });
  const log = new AuditLog({ store, key });
  const record = (n: number) =>
    log.record({
      accessor: 'guest',
      target: 'x',
      scope: 'blob',
      key: `k${n}`,
      action: 'read',
      result: 'denied',
      channel: 'http',
      reason: 'not found',
    });
  return { dir, key, store, keeper, record, errors, warnings };
}

describe('AuditAnchorKeeper', () => {
  it('creates the key 0600 once, and anchors the head at start and at close', async () => {
    const { dir, key, keeper, record } = await setup();
    expect((await stat(join(dir, 'audit.key'))).mode & 0o777).toBe(0o600);
    expect(loadOrCreateAuditKey(join(dir, 'audit.key'), () => undefined)).toEqual(key);
    await record(1);
    await keeper.start();
    expect(readAuditAnchor(join(dir, 'audit-anchor.json'), key)).toMatchObject({ seq: 1, keyedFrom: 2 });
    await record(2);
    await keeper.close();
    expect(readAuditAnchor(join(dir, 'audit-anchor.json'), key)).toMatchObject({ seq: 2, keyedFrom: 2 });
  });

  it('never moves past an anchored entry the log lost: the old anchor stays as evidence', async () => {
    const { dir, key, store, keeper, record, errors } = await setup();
    await record(1);
    await record(2);
    await keeper.start();
    // The database is rewritten behind the relay's back, then grows again.
    const fresh = new MemoryRelayStore();
    Object.assign(store, {
      auditHead: () => fresh.auditHead(),
      queryAudit: (q: object) => fresh.queryAudit(q),
    });
    const other = new AuditLog({ store: fresh, key: new Uint8Array(32) });
    for (let i = 0; i < 3; i++)
      await other.record({
        accessor: 'guest',
        target: 'x',
        scope: 'blob',
        key: `forged${i}`,
        action: 'read',
        result: 'ok',
        channel: 'http',
        reason: '',
      });
    await keeper.anchor();
    expect(readAuditAnchor(join(dir, 'audit-anchor.json'), key)).toMatchObject({ seq: 2 });
    expect(errors.join()).toMatch(/no longer holds its anchored entry/);
  });
});
