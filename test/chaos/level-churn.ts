import { randomBytes } from 'node:crypto';
import type { SeededRandom } from '@scopesync/testing';
import * as decoding from 'lib0/decoding';
import type { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { call, enc } from '../support/http-client.ts';
import { forEachAuditEntry } from './audit-pages.ts';
import { type Receipt, recordingWebSocket } from './recording-socket.ts';
import type { RelayGroup } from './relay-groups.ts';
import type { SoakAddon, SoakContext } from './soak.ts';
import { stockProvider } from './stock-provider.ts';

// User levels under churn, alongside the soak: an admin moves users between Guest, User,
// Moderator and Admin (PUT /users/<id>/level) while they keep trying writes only some levels
// may make — PUBLIC_READ (admins) and another user's USER_PUBLIC (moderators and admins) — and
// keep subscriptions to documents no level lets them read (another user's owner-read draft,
// staff included; a SERVER_SCOPE object at read 1). Their sockets record every frame.
//
// The rules (docs/reliability.md, "Permissions under churn"); in core no document read depends
// on a user's level, only writes do:
// - reads: a subject never receives a data frame of a document it could not read at that
//   moment — for the two hidden documents, at any moment;
// - writes: every write the relay accepted (HTTP 2xx, or `ok` in the audit log) falls in a
//   period in which the subject may have held the level it needs: from the promotion asked for
//   to `graceMs` after the demotion was answered (a change reaches the other relays' sockets
//   and caches within a second, docs/scale-out.md).

/** How hard the churn goes. */
export interface LevelChurnOptions {
  /** Subjects per group. */
  readonly subjects: number;
  readonly churnEveryMs: number;
  readonly writeEveryMs: number;
  readonly graceMs: number;
}

const LEVELS = [0, 1, 5, 10] as const;

/** One level change: asked for at `asked`, answered 204 at `answered` (null: no answer). */
interface LevelChange {
  readonly level: number;
  readonly asked: number;
  answered: number | null;
}

interface Attempt {
  readonly doc: 'board' | 'draft';
  readonly token: string;
  readonly sent: number;
  readonly answered: number;
  readonly status: number;
}

interface Subject {
  readonly userId: string;
  readonly key: string;
  readonly history: LevelChange[];
  readonly attempts: Attempt[];
  readonly receipts: Receipt[];
  close(): void;
}

interface GroupState {
  readonly group: RelayGroup;
  readonly admin: { readonly userId: string; readonly key: string };
  /** Doc names: PUBLIC_READ (admins write), the victim's owner-read draft, a hidden SERVER_SCOPE object. */
  readonly board: string;
  readonly draft: string;
  readonly hidden: string;
  readonly subjects: Subject[];
  /** The draft's owner, live on it (present, and writing to it now and then). */
  readonly owner: { readonly doc: Y.Doc; readonly provider: WebsocketProvider };
}

/**
 * Whether a frame carries something of the document: content (a Yjs update that is not empty —
 * a relay answers a hidden document like an absent one, with an empty sync), encrypted entries,
 * or the presence of one of its readers (`readers`: Yjs client ids). Subscriptions to a hidden
 * document see each other's presence, as would-be creators of an absent one would: not a leak.
 */
function carriesData(message: Receipt['message'], readers: ReadonlySet<number>): boolean {
  switch (message.type) {
    case 'sync-step2':
    case 'sync-update': {
      const update = message.update;
      const clients = Y.decodeStateVector(Y.encodeStateVectorFromUpdate(update));
      const deletes = Y.decodeUpdate(update).ds.clients.size;
      return clients.size > 0 || deletes > 0;
    }
    case 'enc-entries':
      return message.entries.length > 0;
    case 'enc-snapshot':
      return true;
    case 'awareness': {
      const decoder = decoding.createDecoder(message.update);
      const count = decoding.readVarUint(decoder);
      for (let i = 0; i < count; i++) {
        const clientId = decoding.readVarUint(decoder);
        decoding.readVarUint(decoder); // clock
        const state = decoding.readVarString(decoder);
        if (readers.has(clientId) && state !== 'null') return true;
      }
      return false;
    }
    default:
      return false;
  }
}

/** The level a write to each document needs. */
const NEEDS: Record<Attempt['doc'], number> = { board: 10, draft: 5 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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

async function register(url: string, name: string): Promise<{ userId: string; key: string }> {
  return retry(`registering ${name}`, async () => {
    const answer = await call(url, 'POST', '/keys', { body: { device_name: name } });
    if (answer.status !== 200) throw new Error(`answered ${answer.status}`);
    return { userId: answer.json.user_id as string, key: answer.json.key as string };
  });
}

async function writeValue(url: string, key: string, doc: string, value: unknown, read?: number) {
  const [scope, ns, name] = doc.split('/') as [string, string, string];
  return call(url, 'POST', `/userdata/${enc(ns)}/${scope}/${enc(name)}`, {
    key,
    body: { value, ...(read === undefined ? {} : { read }) },
  });
}

function anyRelay(group: RelayGroup, random: SeededRandom): string {
  const live = group.live();
  return live.length > 0 ? random.pick(live).url : group.url;
}

/**
 * The periods in which a subject may have held at least `level`: from a change to such a level
 * asked for, to `graceMs` after the next change away from it was answered (never, unanswered).
 */
function entitled(history: readonly LevelChange[], level: number, graceMs: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  history.forEach((change, i) => {
    if (change.level < level) return;
    const next = history.slice(i + 1).find((c) => c.level < level);
    const end =
      next === undefined || next.answered === null ? Number.POSITIVE_INFINITY : next.answered + graceMs;
    out.push([change.asked, end]);
  });
  return out;
}

/** The level-churn add-on of the soak. */
export function levelChurn(options: LevelChurnOptions): SoakAddon {
  const states: GroupState[] = [];
  const runId = randomBytes(3).toString('hex');
  let tokens = 0;
  const figures = { levelChanges: 0, failedCalls: 0, writesTried: 0, writesAccepted: 0 };

  const openSubject = async (s: GroupState, index: number): Promise<Subject> => {
    const user = await register(s.group.url, `level-subject-${index}`);
    const receipts: Receipt[] = [];
    const Recording = recordingWebSocket((receipt) => receipts.push(receipt));
    const pairs = [s.board, s.draft, s.hidden].map((name) => {
      const doc = new Y.Doc();
      const provider = stockProvider(s.group.url, name, doc, { key: user.key, WebSocketClass: Recording });
      return { doc, provider };
    });
    return {
      ...user,
      // Registered as a User (1), from the start of the run.
      history: [{ level: 1, asked: 0, answered: 0 }],
      attempts: [],
      receipts,
      close: () => {
        for (const p of pairs) {
          p.provider.destroy();
          p.doc.destroy();
        }
      },
    };
  };

  const tryWrite = async (s: GroupState, r: SeededRandom, subject: Subject, doc: Attempt['doc']) => {
    const token = `L${runId}-${++tokens}`;
    const sent = Date.now();
    figures.writesTried += 1;
    const answer = await writeValue(anyRelay(s.group, r), subject.key, s[doc], { token }).catch(() => null);
    const status = answer?.status ?? 0;
    if (status >= 200 && status < 300) figures.writesAccepted += 1;
    subject.attempts.push({ doc, token, sent, answered: Date.now(), status });
  };

  return {
    name: 'levels',
    async prepare(ctx: SoakContext) {
      for (const group of ctx.groups) {
        const admin = await group.createAdmin(`level-admin-${runId}`);
        const victim = await register(group.url, 'level-victim');
        const draft = `USER_PUBLIC/${victim.userId}/levels-${runId}-draft`;
        const ownerDoc = new Y.Doc();
        const owner = {
          doc: ownerDoc,
          provider: stockProvider(group.url, draft, ownerDoc, { key: victim.key, connect: false }),
        };
        const s: GroupState = {
          group,
          admin,
          owner,
          board: `PUBLIC_READ/_/levels-${runId}-board`,
          draft,
          hidden: `SERVER_SCOPE/_/levels-${runId}-hidden`,
          subjects: [],
        };
        // The board is public; the draft is its owner's only (read 1), staff included; the
        // SERVER_SCOPE object keeps its default read 1 (owner: the system, so no client reads it).
        for (const [doc, key, value, read] of [
          [s.board, admin.key, { token: 'board' }, undefined],
          [s.draft, victim.key, { token: 'draft' }, 1],
          [s.hidden, admin.key, { token: 'hidden' }, undefined],
        ] as const) {
          await retry(`creating ${doc}`, async () => {
            const answer = await writeValue(group.url, key, doc, value, read);
            if (answer.status !== 200)
              throw new Error(`answered ${answer.status}: ${JSON.stringify(answer.json)}`);
          });
        }
        // Its owner reads it live: present in its room and writing, what no subject may see.
        owner.provider.connect();
        owner.provider.awareness.setLocalState({ user: 'owner of the draft' });
        for (let i = 0; i < options.subjects; i++) s.subjects.push(await openSubject(s, i));
        states.push(s);
      }
      ctx.log(`levels: ${states.length} admins, ${options.subjects} subjects each`);
    },
    async run(ctx: SoakContext) {
      const r = ctx.random;
      let lastWrite = 0;
      while (ctx.running()) {
        await sleep(Math.min(options.churnEveryMs, options.writeEveryMs));
        if (Date.now() - lastWrite >= options.writeEveryMs) {
          lastWrite = Date.now();
          const s = r.pick(states);
          const subject = r.pick(s.subjects);
          await tryWrite(s, r, subject, r.pick(['board', 'draft'] as const));
          s.owner.doc.getArray<string>('items').push([`O${runId}-${++tokens}`]);
        }
        const s = r.pick(states);
        const subject = r.pick(s.subjects);
        const current = subject.history.at(-1)?.level;
        const level = r.pick(LEVELS.filter((l) => l !== current));
        const change: LevelChange = { level, asked: Date.now(), answered: null };
        subject.history.push(change);
        const answer = await call(anyRelay(s.group, r), 'PUT', `/users/${subject.userId}/level`, {
          key: s.admin.key,
          body: { level },
        }).catch(() => null);
        if (answer?.status === 204) {
          change.answered = Date.now();
          figures.levelChanges += 1;
        } else figures.failedCalls += 1;
      }
    },
    async finish(ctx: SoakContext) {
      const violations: string[] = [];
      let frames = 0;
      let auditChecked = 0;
      for (const s of states) {
        const readers = new Set([s.owner.doc.clientID]);
        s.owner.provider.destroy();
        s.owner.doc.destroy();
        for (const subject of s.subjects) {
          subject.close();
          // Reads: no data frame of a document no level may read.
          for (const receipt of subject.receipts) {
            frames += 1;
            if (receipt.doc !== s.draft && receipt.doc !== s.hidden) continue;
            if (carriesData(receipt.message, readers))
              violations.push(
                `${s.group.name}: ${subject.userId} received ${receipt.message.type} of ${receipt.doc}`,
              );
          }
          // Writes the relay accepted: made while the subject may have held the level.
          for (const a of subject.attempts) {
            if (a.status < 200 || a.status >= 300) continue;
            const periods = entitled(subject.history, NEEDS[a.doc], options.graceMs);
            if (!periods.some(([from, to]) => from <= a.answered && a.sent < to))
              violations.push(
                `${s.group.name}: ${subject.userId}'s write to ${a.doc} was accepted (HTTP ${a.status}) while it had not the level ${NEEDS[a.doc]}: ${JSON.stringify(subject.history)}`,
              );
          }
        }
        // The audit log: every `ok` write of a subject to the board or the draft.
        const relay = s.group.live()[0]?.url ?? s.group.url;
        const failed = await forEachAuditEntry(relay, s.admin.key, (entry) => {
          const subject = s.subjects.find((x) => x.userId === entry.accessor);
          if (!subject || entry.result !== 'ok' || entry.action !== 'write') return;
          const key = String(entry.key);
          const doc = key.includes('-board') ? 'board' : key.includes('-draft') ? 'draft' : null;
          if (doc === null) return;
          auditChecked += 1;
          const at = entry.timestamp as number;
          if (
            !entitled(subject.history, NEEDS[doc], options.graceMs).some(
              ([from, to]) => from <= at && at < to,
            )
          )
            violations.push(
              `${s.group.name}: the audit log shows a write ok to ${doc} by ${subject.userId} at ${at} without the level ${NEEDS[doc]}`,
            );
        });
        if (failed !== undefined) violations.push(`${s.group.name}: ${failed}`);
      }
      ctx.log(`levels: ${figures.levelChanges} level changes, ${violations.length} violations`);
      return { figures: { ...figures, frames, auditChecked }, violations };
    },
  };
}
