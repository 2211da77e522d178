import { type Message, parseDocName, type SubscribeMode } from '@scopesync/core';
import { type Actor, type Fixture, MAX_FRAME } from './ws-fuzz-fixture.ts';
import { type Decoded, isYjsUpdate } from './ws-fuzz-frames.ts';
import { type Frame, ordinary, type Session } from './ws-fuzz-generators.ts';

// What the WebSocket fuzzer holds the relay to: who may read and write which document, which
// answers an absent or hidden document gives, and what must become of each frame sent.

/** Whether `actor` may write `name`: false for every protected or forbidden name, null when it depends. */
export function mayWrite(f: Fixture, actor: Actor, name: string): boolean | null {
  if (f.protectedDocs.includes(name) || f.forbiddenNew.includes(name)) return false;
  if (name.startsWith('PUBLIC_RW/')) return true;
  for (const scope of ['USER_PUBLIC', 'USER_PRIVATE']) {
    if (!name.startsWith(`${scope}/`)) continue;
    return actor.userId !== null && name.startsWith(`${scope}/${actor.userId}/`);
  }
  return null;
}

/** Whether `envelope` is one `actor` sealed for `name` itself: no other envelope may ever be stored. */
export function sealedBy(f: Fixture, actor: Actor, name: string, envelope: Uint8Array): boolean {
  return (
    actor.name === 'bob' &&
    name === `USER_PRIVATE/${f.bob.userId}/diary` &&
    f.envelopes.some((e) => e.docName === name && Buffer.from(e.bytes).equals(envelope))
  );
}

/** Whether an awareness state the relay sent is a removal or names one of the fuzzing callers as `user.id`. */
export function boundToCaller(f: Fixture, json: string): boolean {
  if (json === 'null') return true;
  try {
    const id = (JSON.parse(json) as { user?: { id?: unknown } }).user?.id;
    return f.actors.some((a) => id === (a.userId ?? 'guest'));
  } catch {
    return false;
  }
}

/** Whether `actor` may read `name`: false where a subscription must be refused, null when it depends. */
export function mayRead(f: Fixture, actor: Actor, name: string): boolean | null {
  if (name.startsWith(`USER_PRIVATE/${f.alice}/`) || name === `USER_PUBLIC/${f.alice}/draft`) return false;
  if (name === 'blob/alice-enc' || name === 'blob/alice-plain') return actor.name === 'bob';
  if (f.protectedDocs.includes(name)) return true;
  return null;
}

/**
 * Whether `actor`'s single-document socket on `doc` may be closed with 4403 "not found": only
 * bob's on his own USER_PUBLIC document, once he has narrowed its read flag to 0 (a subscribe
 * with flags on a write, his right as owner). Read 0 hides the object from every client, its
 * owner included, and bob could create it were it absent, so his subscription *poses* as one to
 * an absent document (docs/security.md, "Existence"): the first write that carries content ends
 * it as if someone had just created the object, and an open subscription whose document turns
 * hidden is ended the same way, at any frame. The flag is read right after the close: a posing
 * subscription never writes, and the HTTP fuzz runs on a relay of its own, so only a write of
 * bob's racing the re-decision that ends his other subscriptions could widen it again first.
 */
export async function hiddenFromOwner(f: Fixture, actor: Actor, doc: string | null): Promise<boolean> {
  const own = `USER_PUBLIC/${f.bob.userId}/own`;
  if (actor.name !== 'bob' || doc !== own) return false;
  const rows = await f.stored.rows('SELECT read FROM objects WHERE name = ?', own);
  return rows.length === 1 && Number(rows[0]?.[0]) === 0;
}

/**
 * Whether `actor` is answered about `name` as about an absent object it could create
 * (docs/security.md, "Existence"): read-write, an empty document, never anything of it.
 */
export function posesAsAbsent(actor: Actor, name: string): boolean {
  return actor.name === 'mallory' && (name === 'blob/alice-enc' || name === 'blob/alice-plain');
}

/** Whether a message about a document carries nothing of it (what an absent document sends). */
export function carriesNothing(message: Message): boolean {
  if (message.type === 'sync-step2')
    return message.update.length === 2 && message.update.every((b) => b === 0);
  if (message.type === 'enc-entries') return message.entries.length === 0 && message.headSeq === 0;
  return false;
}

/** What the relay must do with a frame. */
export type Expect =
  | 'open' // process it (or refuse it with an answer) and keep the socket
  | 'close' // close the socket with 4400 and a reason
  | 'maybe-close' // well-formed, content the relay may find malformed: open, or 4400
  | 'too-big'; // over the frame limit: 1009

/** What the relay must do with `frame` on `s`, judged by core's reader and what the session knows. */
export function expectationOf(s: Session, frame: Frame, decoded: Decoded | null): Expect {
  if (typeof frame.bytes === 'string') return 'close';
  if (frame.bytes.length > MAX_FRAME) return 'too-big';
  if (!decoded?.ok) return 'close';
  const { message } = decoded;
  if (['permission', 'ack', 'error', 'enc-entries', 'pong'].includes(message.type)) return 'close';
  // A ping is answered at once when connection-level (the empty doc name), and malformed otherwise.
  if (message.type === 'ping') return decoded.docName === '' ? 'open' : 'close';
  let mode: SubscribeMode = 'plaintext';
  let name = s.doc as string;
  if (decoded.docName !== null) {
    try {
      name = parseDocName(decoded.docName).name;
    } catch {
      return 'open'; // answered with an error
    }
    if (message.type === 'subscribe' || message.type === 'unsubscribe') return 'open';
    const sub = s.subs.get(name);
    if (sub === undefined) return 'open'; // "not subscribed"
    mode = sub;
  }
  switch (message.type) {
    case 'sync-step1':
      return mode === 'plaintext' ? 'maybe-close' : 'open';
    case 'sync-step2':
    case 'sync-update':
      if (mode !== 'plaintext') return 'open'; // refused: the subscription is encrypted
      if (!isYjsUpdate(message.update)) return 'close';
      // A writer's odd update may decode yet fail to integrate: 4400 too.
      return mayWrite(s.f, s.actor, name) === false ||
        ordinary.has(Buffer.from(message.update).toString('base64'))
        ? 'open'
        : 'maybe-close';
    case 'awareness':
      return 'maybe-close';
    default:
      return 'open';
  }
}
