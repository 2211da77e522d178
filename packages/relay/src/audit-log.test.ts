import type { AuditQuery, AuditRecord, RelayStore } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import {
  type AuditAnchorPoint,
  type AuditEvent,
  AuditLog,
  GENESIS_HASH,
  hashAuditEntry,
  verifyAuditChain,
} from './audit-log.ts';
import { MemoryRelayStore } from './memory-relay-store.ts';

const event = (n: number): AuditEvent => ({
  accessor: 'user_00000000000000b0',
  target: 'user_00000000000000a1',
  scope: 'USER_PUBLIC',
  key: `k${n}`,
  action: 'read',
  result: 'ok',
  channel: 'http',
  reason: 'USER_PUBLIC is readable by everyone',
});

/** A store whose audit entries pass through `tamper` on the way out: an attacker with file access. */
function tampered(store: RelayStore, tamper: (entries: AuditRecord[]) => AuditRecord[]): RelayStore {
  return new Proxy(store, {
    get(target, property) {
      if (property === 'queryAudit') return async (q: AuditQuery) => tamper(await target.queryAudit(q));
      const member = Reflect.get(target, property, target);
      return typeof member === 'function' ? member.bind(target) : member;
    },
  });
}

async function logOf(count: number): Promise<MemoryRelayStore> {
  const store = new MemoryRelayStore();
  let now = 1000;
  const log = new AuditLog({ store, now: () => now++ });
  for (let i = 0; i < count; i++) await log.record(event(i));
  return store;
}

describe('AuditLog', () => {
  it('chains entries named AUDIT::<requester>::<target>::<timestamp>', async () => {
    const store = await logOf(3);
    const entries = await store.queryAudit({});
    expect(entries.map((e) => e.id)).toEqual([
      'AUDIT::user_00000000000000b0::user_00000000000000a1::1000',
      'AUDIT::user_00000000000000b0::user_00000000000000a1::1001',
      'AUDIT::user_00000000000000b0::user_00000000000000a1::1002',
    ]);
    expect(entries[0]?.prevHash).toBe(GENESIS_HASH);
    expect(entries[1]?.prevHash).toBe(entries[0]?.hash);
    expect(entries.every((e) => hashAuditEntry(e) === e.hash)).toBe(true);
    expect(await verifyAuditChain(store)).toMatchObject({ ok: true, entries: 3, unkeyedThrough: 3 });
  });

  it('reports an edited entry, even when its hash was recomputed', async () => {
    const store = await logOf(4);
    const edited = await verifyAuditChain(
      tampered(store, (es) => es.map((e) => (e.seq === 2 ? { ...e, result: 'denied' } : e))),
    );
    expect(edited).toMatchObject({ ok: false, seq: 2, entries: 1 });
    expect(edited.ok === false && edited.problem).toMatch(/edited/);
    const rehashed = await verifyAuditChain(
      tampered(store, (es) =>
        es.map((e) => {
          if (e.seq !== 2) return e;
          const forged = { ...e, key: 'other' };
          return { ...forged, hash: hashAuditEntry(forged) };
        }),
      ),
    );
    expect(rehashed).toMatchObject({ ok: false, seq: 3 });
  });

  it('reports a deleted entry in the middle and at the end', async () => {
    const store = await logOf(4);
    expect(await verifyAuditChain(tampered(store, (es) => es.filter((e) => e.seq !== 2)))).toMatchObject({
      ok: false,
      seq: 2,
      id: null,
    });
    const truncated = await verifyAuditChain(tampered(store, (es) => es.filter((e) => e.seq !== 4)));
    expect(truncated).toMatchObject({ ok: false, seq: 4 });
    expect(truncated.ok === false && truncated.problem).toMatch(/missing from the end/);
  });

  describe('keyed and anchored (docs/security.md, "Audit chain")', () => {
    const key = new Uint8Array(32).fill(7);

    async function keyedLog(count: number, unkeyedFirst = 0): Promise<MemoryRelayStore> {
      const store = new MemoryRelayStore();
      let now = 1000;
      const plain = new AuditLog({ store, now: () => now++ });
      for (let i = 0; i < unkeyedFirst; i++) await plain.record(event(i));
      const log = new AuditLog({ store, key, now: () => now++ });
      for (let i = unkeyedFirst; i < count; i++) await log.record(event(i));
      return store;
    }

    async function anchorOf(store: RelayStore, keyedFrom = 1): Promise<AuditAnchorPoint> {
      const head = await store.auditHead();
      return { seq: head?.seq ?? 0, hash: head?.hash ?? '', keyedFrom };
    }

    it('verifies with the key and the anchor, and tells an unkeyed beginning apart', async () => {
      const store = await keyedLog(5, 2);
      const anchor = await anchorOf(store, 3);
      expect(await verifyAuditChain(store, { key, anchor })).toEqual({
        ok: true,
        entries: 5,
        unkeyedThrough: 2,
        anchoredSeq: 5,
      });
      // Without the key, keyed entries cannot be checked: never "ok".
      expect(await verifyAuditChain(store)).toMatchObject({ ok: false, seq: 3 });
    });

    it('detects the newest entries deleted (and the head moved back) through the anchor', async () => {
      const store = await keyedLog(5);
      const anchor = await anchorOf(store);
      const entries = await store.queryAudit({});
      const shorter = tampered(store, (es) => es.filter((e) => e.seq <= 3));
      const moved = new Proxy(shorter, {
        get(target, property) {
          if (property === 'auditHead') return async () => ({ seq: 3, hash: entries[2]?.hash });
          return Reflect.get(target, property, target);
        },
      });
      const verdict = await verifyAuditChain(moved, { key, anchor });
      expect(verdict).toMatchObject({ ok: false, seq: 4 });
      expect(verdict.ok === false && verdict.problem).toMatch(/entries 4–5 are missing/);
    });

    it('detects a chain recomputed without the key, or with another key', async () => {
      const store = await keyedLog(4);
      const anchor = await anchorOf(store);
      for (const forgeKey of [undefined, new Uint8Array(32)]) {
        const rechained = tampered(store, (es) => {
          let prevHash = GENESIS_HASH;
          return es
            .filter((e) => e.seq !== 2)
            .map((e, i) => {
              const unsealed = { ...e, seq: i + 1, prevHash };
              const hash = hashAuditEntry(unsealed, forgeKey);
              prevHash = hash;
              return { ...unsealed, hash };
            });
        });
        expect(await verifyAuditChain(rechained, { key, anchor })).toMatchObject({ ok: false, seq: 1 });
      }
    });

    it('detects an emptied log', async () => {
      const store = await keyedLog(3);
      const anchor = await anchorOf(store);
      const empty = new Proxy(
        tampered(store, () => []),
        {
          get(target, property) {
            if (property === 'auditHead') return async () => null;
            return Reflect.get(target, property, target);
          },
        },
      );
      expect(await verifyAuditChain(empty, { key, anchor })).toMatchObject({ ok: false, seq: 1 });
    });
  });
});
