import { randomBytes } from 'node:crypto';
import { createClient, type DocHandle, memoryClientStore, type SyncClient } from '@scopesync/client';
import type { SeededRandom } from '@scopesync/testing';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import { call, enc } from '../support/http-client.ts';
import { forEachAuditEntry } from './audit-pages.ts';
import { type Receipt, recordingWebSocket } from './recording-socket.ts';
import type { RelayGroup } from './relay-groups.ts';
import { ITEMS } from './sim-clients.ts';
import type { SoakAddon, SoakContext } from './soak.ts';
import { stockProvider } from './stock-provider.ts';

// Permissions under churn, alongside the soak: an owner keeps writing to blobs while shares to
// other users are granted, changed and revoked and a sharee's API key is revoked. Every frame
// each sharee's client receives is recorded with its arrival time; at the end a checker replays
// the ACL history and the relay's audit log against those receipts.
//
// The rules (docs/reliability.md, "Permissions under churn"):
// - content: a sharee never receives a write made while its access was definitely ended (after
//   the revocation answered, before the next grant was asked for), during that same period;
// - timing: no data frame reaches a sharee more than `graceMs` after its access ended (and
//   before it was granted again) — revocation reaches sockets on every relay within a second;
// - audit: every read or write the relay logged as `ok` for a sharee falls in a period in which
//   access may have been held (up to `graceMs` after a revocation, for relays that had not heard).

/** How hard the churn goes. */
export interface ChurnOptions {
  readonly blobs: number;
  readonly sharees: number;
  readonly churnEveryMs: number;
  readonly writeEveryMs: number;
  readonly graceMs: number;
}

/** One change of who may read what, as the checker sees it. */
type AclEvent =
  /** Asked for (answered or not): access may exist from `at` on. */
  | { readonly kind: 'grant'; readonly at: number }
  /** Answered 204/404 (share) or 204 (key): access has ended by `at`. */
  | { readonly kind: 'revoke'; readonly at: number };

interface Sharee {
  readonly userId: string;
  readonly key: string;
  readonly stock: boolean;
  keyRevoked: boolean;
  readonly receipts: Receipt[];
  close(): Promise<void>;
  /** Re-opens subscriptions the relay ended (our client closes a handle whose access ended). */
  revive(): void;
}

interface GroupState {
  readonly group: RelayGroup;
  readonly owner: { readonly userId: string; readonly key: string };
  readonly writer: SyncClient;
  readonly handles: Map<string, DocHandle>;
  readonly blobs: string[];
  readonly sharees: Sharee[];
  /** `${blob}\u0000${userId}` → events in order. */
  readonly acl: Map<string, AclEvent[]>;
  /** Token → written at. */
  readonly written: Map<string, number>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const TOKEN = /\[P[0-9a-f]+-\d+\]/g;

/** Retries `fn` a few times: set-up calls go through the faulty proxy too. */
async function retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= 8) throw new Error(`${what}: ${String(error)}`, { cause: error });
      await sleep(250 * attempt);
    }
  }
}

function register(url: string, name: string): Promise<{ userId: string; key: string }> {
  return retry(`registering ${name}`, async () => {
    const answer = await call(url, 'POST', '/keys', { body: { device_name: name } });
    if (answer.status !== 200) throw new Error(`answered ${answer.status}`);
    return { userId: answer.json.user_id as string, key: answer.json.key as string };
  });
}

/** A direct relay URL of the group (HTTP calls of the churn skip the faulty proxy, but not the kills). */
function anyRelay(group: RelayGroup, random: SeededRandom): string {
  const live = group.live();
  return live.length > 0 ? random.pick(live).url : group.url;
}

/** The permission churn add-on of the soak. */
export function permissionChurn(options: ChurnOptions): SoakAddon {
  const states: GroupState[] = [];
  const runId = randomBytes(3).toString('hex');
  let tokens = 0;
  const figures = {
    grants: 0,
    revocations: 0,
    levelChanges: 0,
    keyRevocations: 0,
    failedCalls: 0,
    writes: 0,
  };

  const aclOf = (s: GroupState, blob: string, userId: string): AclEvent[] => {
    const k = `${blob}\u0000${userId}`;
    const list = s.acl.get(k) ?? [];
    s.acl.set(k, list);
    return list;
  };
  const granted = (s: GroupState, blob: string, userId: string): boolean =>
    aclOf(s, blob, userId).at(-1)?.kind === 'grant';

  const share = async (s: GroupState, r: SeededRandom, blob: string, sharee: Sharee, level: string) => {
    aclOf(s, blob, sharee.userId).push({ kind: 'grant', at: Date.now() });
    const answer = await call(anyRelay(s.group, r), 'POST', `/share/${enc(blob)}`, {
      key: s.owner.key,
      body: { user_id: sharee.userId, access_level: level },
    }).catch(() => null);
    if (answer?.status === 200) figures.grants += 1;
    else figures.failedCalls += 1;
  };
  const revoke = async (s: GroupState, r: SeededRandom, blob: string, sharee: Sharee) => {
    const answer = await call(anyRelay(s.group, r), 'DELETE', `/share/${enc(blob)}/${sharee.userId}`, {
      key: s.owner.key,
    }).catch(() => null);
    if (answer?.status === 204 || answer?.status === 404) {
      aclOf(s, blob, sharee.userId).push({ kind: 'revoke', at: Date.now() });
      figures.revocations += 1;
    } else figures.failedCalls += 1;
  };

  const openSharee = async (s: GroupState, stock: boolean, index: number): Promise<Sharee> => {
    const user = await register(s.group.url, `sharee-${index}`);
    const receipts: Receipt[] = [];
    const Recording = recordingWebSocket((receipt) => receipts.push(receipt));
    if (stock) {
      const pairs = s.blobs.map((blob) => {
        const doc = new Y.Doc();
        const provider = stockProvider(s.group.url, `blob/${blob}`, doc, {
          key: user.key,
          WebSocketClass: Recording,
        });
        return { doc, provider };
      });
      return {
        ...user,
        stock,
        keyRevoked: false,
        receipts,
        revive: () => undefined,
        close: async () => {
          for (const p of pairs) {
            p.provider.destroy();
            p.doc.destroy();
          }
        },
      };
    }
    const client = await retry('opening a sharee', () =>
      createClient({
        url: s.group.url,
        apiKey: user.key,
        WebSocket: Recording,
        store: memoryClientStore(),
        backoff: { initialMs: 50, maxMs: 1000 },
      }),
    );
    const handles = new Map(s.blobs.map((blob) => [blob, client.doc(`blob/${blob}`)]));
    return {
      ...user,
      stock,
      keyRevoked: false,
      receipts,
      revive: () => {
        for (const [blob, h] of handles) if (h.closed) handles.set(blob, client.doc(`blob/${blob}`));
      },
      close: () => client.close(),
    };
  };

  const write = async (s: GroupState, blob: string): Promise<void> => {
    const token = `[P${runId}-${++tokens}]`;
    s.written.set(token, Date.now());
    figures.writes += 1;
    await (s.handles.get(blob) as DocHandle).transact((d) => d.getArray<string>(ITEMS).push([token]));
  };

  return {
    name: 'permissions',
    async prepare(ctx: SoakContext) {
      const r = ctx.random;
      for (const group of ctx.groups) {
        const owner = await register(group.url, 'owner');
        const writer = await retry('opening the owner', () =>
          createClient({
            url: group.url,
            apiKey: owner.key,
            WebSocket,
            store: memoryClientStore(),
            backoff: { initialMs: 50, maxMs: 1000 },
          }),
        );
        const blobs = Array.from({ length: options.blobs }, (_, i) => `perm-${runId}-${group.name}-${i}`);
        const handles = new Map(blobs.map((b) => [b, writer.doc(`blob/${b}`)]));
        const s: GroupState = {
          group,
          owner,
          writer,
          handles,
          blobs,
          sharees: [],
          acl: new Map(),
          written: new Map(),
        };
        states.push(s);
        // The owner's first write creates each blob.
        for (const blob of blobs) await write(s, blob);
        await Promise.all([...handles.values()].map((h) => h.whenAcked()));
        for (let i = 0; i < options.sharees; i++) {
          const sharee = await openSharee(s, i % 2 === 1, i);
          s.sharees.push(sharee);
          for (const blob of blobs)
            if (r.bool()) await share(s, r, blob, sharee, r.pick(['read_only', 'read_write']));
        }
      }
      ctx.log(
        `permissions: ${states.length} owners, ${options.blobs} blobs and ${options.sharees} sharees each`,
      );
    },
    async run(ctx: SoakContext) {
      const r = ctx.random;
      const revokeKeyAt = Date.now() + r.int(1000, 4000);
      let lastWrite = 0;
      while (ctx.running()) {
        await sleep(Math.min(options.churnEveryMs, options.writeEveryMs));
        const s = r.pick(states);
        if (Date.now() - lastWrite >= options.writeEveryMs) {
          lastWrite = Date.now();
          for (const state of states) await write(state, r.pick(state.blobs)).catch(() => undefined);
        }
        const blob = r.pick(s.blobs);
        const sharee = r.pick(s.sharees);
        if (sharee.keyRevoked) continue;
        if (!granted(s, blob, sharee.userId))
          await share(s, r, blob, sharee, r.pick(['read_only', 'read_write']));
        else if (r.int(0, 2) === 0) {
          figures.levelChanges += 1;
          await share(s, r, blob, sharee, r.pick(['read_only', 'read_write']));
        } else await revoke(s, r, blob, sharee);
        for (const x of s.sharees) x.revive();
        if (Date.now() >= revokeKeyAt && figures.keyRevocations === 0) {
          // A sharee revokes its own key (a lost device): its sockets close on every relay.
          for (const state of states) {
            const doomed = state.sharees.find((x) => !x.keyRevoked);
            if (!doomed) continue;
            const answer = await call(anyRelay(state.group, r), 'DELETE', `/keys/${doomed.key}`, {
              key: doomed.key,
            }).catch(() => null);
            if (answer?.status === 204) {
              doomed.keyRevoked = true;
              for (const blob of state.blobs)
                aclOf(state, blob, doomed.userId).push({ kind: 'revoke', at: Date.now() });
              figures.keyRevocations += 1;
            }
          }
        }
      }
    },

    async finish(ctx: SoakContext) {
      const violations: string[] = [];
      let frames = 0;
      let dataFrames = 0;
      let tokensReceived = 0;
      let auditChecked = 0;
      for (const s of states) {
        // A no-access window: from a revocation's answer to the next grant asked for (or the end).
        const windows = (blob: string, userId: string): Array<[number, number]> => {
          const out: Array<[number, number]> = [];
          const events = aclOf(s, blob, userId);
          events.forEach((e, i) => {
            if (e.kind !== 'revoke') return;
            const next = events.slice(i + 1).find((x) => x.kind === 'grant');
            out.push([e.at, next?.at ?? Number.POSITIVE_INFINITY]);
          });
          // Never granted at all: no access from the start.
          if (events.length === 0 || events[0]?.kind === 'revoke')
            out.push([0, events[0]?.at ?? Number.POSITIVE_INFINITY]);
          return out;
        };
        for (const sharee of s.sharees) {
          for (const receipt of sharee.receipts) {
            frames += 1;
            const { message } = receipt;
            if (message.type !== 'sync-step2' && message.type !== 'sync-update') continue;
            if (!receipt.doc.startsWith('blob/')) continue;
            dataFrames += 1;
            const blob = receipt.doc.slice('blob/'.length);
            const found = Buffer.from(receipt.bytes).toString('latin1').match(TOKEN) ?? [];
            tokensReceived += found.length;
            for (const [from, to] of windows(blob, sharee.userId)) {
              if (receipt.at <= from || receipt.at >= to) continue;
              for (const token of found) {
                const w = s.written.get(token);
                if (w !== undefined && w > from && w < to)
                  violations.push(
                    `${s.group.name}: ${sharee.userId} received ${token} of ${blob} (written ${w - from} ms after its access ended) at +${receipt.at - from} ms`,
                  );
              }
              if (found.length > 0 && receipt.at > from + options.graceMs)
                violations.push(
                  `${s.group.name}: ${sharee.userId} received ${message.type} of ${blob} ${receipt.at - from} ms after its access ended`,
                );
            }
          }
        }
        // The audit log: every ok read or write of a sharee happened while it may have had access.
        const relay = s.group.live()[0]?.url ?? s.group.url;
        const failed = await forEachAuditEntry(relay, s.owner.key, (entry) => {
          const sharee = s.sharees.find((x) => x.userId === entry.accessor);
          const blob = s.blobs.find((b) => String(entry.key).includes(b));
          if (!sharee || !blob || entry.result !== 'ok') return;
          if (entry.action !== 'read' && entry.action !== 'write') return;
          auditChecked += 1;
          const at = entry.timestamp as number;
          for (const [from, to] of windows(blob, sharee.userId)) {
            if (at > from + options.graceMs && at < to)
              violations.push(
                `${s.group.name}: the audit log shows ${entry.action} ok of ${blob} by ${sharee.userId} ${at - from} ms after its access ended`,
              );
          }
        });
        if (failed !== undefined) violations.push(`${s.group.name}: ${failed}`);
        await Promise.allSettled(s.sharees.map((x) => x.close()));
        await s.writer.close();
      }
      ctx.log(`permissions: ${frames} frames recorded, ${violations.length} violations`);
      return {
        figures: { ...figures, frames, dataFrames, tokensReceived, auditChecked },
        violations,
      };
    },
  };
}
