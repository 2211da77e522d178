import { HIDDEN_REASON, type Message, parseDocName } from '@scopesync/core';
import type { SeededRandom } from '@scopesync/testing';
import { expect } from 'vitest';
import { enc } from './http-client.ts';
import { type Fixture, LIMITS } from './ws-fuzz-fixture.ts';
import { decodeAwareness, decodeFrame, hex } from './ws-fuzz-frames.ts';
import { nextFrame, ordinary, type Session } from './ws-fuzz-generators.ts';
import {
  boundToCaller,
  carriesNothing,
  expectationOf,
  hiddenFromOwner,
  mayRead,
  mayWrite,
  posesAsAbsent,
  sealedBy,
} from './ws-fuzz-rules.ts';
import { DocProbe, FuzzSocket, muxProbe, open } from './ws-fuzz-sockets.ts';
import { bump, type Stats } from './ws-fuzz-stats.ts';

// One session of the WebSocket fuzzer: a socket of one caller on one endpoint, frames sent one
// at a time, and after each the checks of everything the relay sent back and of whether it kept
// or closed the socket, against the rules in ws-fuzz-rules.ts.

/** One socket of one lane: frames until the relay closes it or the session ends. Resolves with the frames sent. */
export async function runSession(
  r: SeededRandom,
  f: Fixture,
  stats: Stats,
  lane: number,
  budget: number,
): Promise<number> {
  const actor = r.pick(f.actors);
  const mux = r.bool();
  const readable = [
    'PUBLIC_RW/_/board',
    'PUBLIC_RW/_/fuzz',
    `USER_PUBLIC/${f.alice}/profile`,
    'PUBLIC_READ/_/news',
    'PUBLIC_READ/_/rules',
    'SERVER_SCOPE/_/config',
    `USER_PUBLIC/${f.bob.userId}/own`,
    ...(actor.name === 'bob' ? ['blob/alice-plain'] : []),
  ];
  const doc = mux ? null : r.pick(readable);
  const query = actor.key === undefined ? '' : `?key=${actor.key}`;
  const path = mux ? '/sync' : `/sync/${r.bool() ? doc : enc(doc as string)}`;
  const opened = await open(`${f.relay.wsUrl}${path}${query}`, mux);
  if (opened === 403 && doc === `USER_PUBLIC/${f.bob.userId}/own` && actor.name !== 'bob') {
    // Bob may have narrowed his own document's read flag (subscribe flags on a write): his right.
    // Bob himself is let in even at read 0: posing, since he could create it (hiddenFromOwner).
    stats.upgradesRefused += 1;
    return 0;
  }
  expect(opened, `upgrade of ${path} as ${actor.name}`).toBeInstanceOf(FuzzSocket);
  const socket = opened as FuzzSocket;
  const s: Session = {
    f,
    actor,
    doc,
    subs: new Map(),
    requested: new Map(),
    nextRef: 1,
    mutateRate: r.pick([0.1, 0.3, 0.5]),
  };
  const docProbe = mux ? null : new DocProbe(socket, r.int(1, 0x7fff_ffff));
  stats.sessions += 1;
  const length = Math.min(budget, r.int(1, 60));
  const opening = mux ? r.int(0, 3) : 0;
  let seen = socket.inbox.length;
  let sent = 0;

  for (let i = 0; i < length; i++) {
    const frame = nextFrame(r, s, i < opening);
    const decoded = typeof frame.bytes === 'string' ? null : decodeFrame(frame.bytes, mux, LIMITS);
    const expected = expectationOf(s, frame, decoded);
    const context = () =>
      `lane ${lane} session ${stats.sessions} (${actor.name} on ${doc ?? '/sync'}), frame ${stats.frames}: ${frame.kind}, expected ${expected}, ` +
      `${typeof frame.bytes === 'string' ? JSON.stringify(frame.bytes) : hex(frame.bytes)}` +
      (decoded?.ok
        ? ` = ${decoded.docName ?? ''} ${decoded.message.type}`
        : decoded
          ? ` (${decoded.reason})`
          : '');
    if (decoded?.ok && decoded.docName !== null) {
      const { message } = decoded;
      try {
        const name = parseDocName(decoded.docName).name;
        if (message.type === 'subscribe') s.requested.set(name, message.mode);
        if (message.type === 'unsubscribe') s.subs.delete(name);
      } catch {
        // answered with an error
      }
    }
    const errorsBefore = f.relayErrors.length;
    const from = socket.inbox.length;
    socket.ws.send(frame.bytes, { binary: typeof frame.bytes !== 'string' });
    stats.frames += 1;
    sent += 1;
    if (mux) stats.muxFrames += 1;
    else stats.docFrames += 1;
    bump(stats.kinds, frame.kind.split(' ')[0] as string);
    const answer = docProbe ? await docProbe.probe() : await muxProbe(socket);
    const check = (ok: boolean, what: () => string): void => {
      if (!ok) throw new Error(`${what()}, after ${context()}`);
    };
    check(
      f.relayErrors.length === errorsBefore,
      () => `the relay logged ${f.relayErrors.slice(errorsBefore).join('; ')}`,
    );
    check(
      socket.garbled.length === 0,
      () => `the relay sent frames core cannot read: ${socket.garbled.join('; ')}`,
    );

    // What came back before the probe's answer.
    const between = socket.inbox.slice(from, answer === 'closed' ? undefined : answer);
    for (const got of socket.inbox.slice(seen)) {
      const name = got.docName === null ? doc : got.docName;
      if (name === null || name.startsWith('~probe-')) continue;
      let canonical: string;
      try {
        canonical = parseDocName(name).name;
      } catch {
        continue;
      }
      const writable = mayWrite(f, actor, canonical);
      const { message } = got;
      const posing = posesAsAbsent(actor, canonical);
      if (['sync-step2', 'sync-update', 'enc-entries', 'awareness'].includes(message.type)) {
        check(
          // Posing: an empty document, and the presence of fellow posers (checked below: callers only).
          mayRead(f, actor, canonical) !== false ||
            (posing && (carriesNothing(message) || message.type === 'awareness')),
          () => `${message.type} of ${canonical} sent to ${actor.name}`,
        );
      }
      if (message.type === 'ack') {
        stats.acks += 1;
        check(
          writable !== false || (posing && message.seq === 0),
          () => `an ack for ${canonical}, which ${actor.name} may not write`,
        );
      }
      if (message.type === 'permission') {
        if (message.access === 'read-write') {
          check(writable !== false || posing, () => `read-write access to ${canonical} for ${actor.name}`);
        }
        // Waiting (absent or hidden) grants nothing: frames about it are answered as unsubscribed.
        if (message.access === 'read' || message.access === 'read-write') {
          check(
            mayRead(f, actor, canonical) !== false || (posing && message.access === 'read-write'),
            () => `access to ${canonical} for ${actor.name}`,
          );
          s.subs.set(canonical, s.requested.get(canonical) ?? 'plaintext');
        } else s.subs.delete(canonical);
      }
      if (message.type === 'error' && message.ref === 0) s.subs.delete(canonical);
      if (message.type === 'permission-denied') stats.permissionDenied += 1;
      if (message.type === 'awareness') {
        // Awareness is bound to the authenticated caller: every state names a real caller.
        for (const entry of decodeAwareness(message.update) ?? []) {
          check(
            boundToCaller(f, entry.json),
            () => `awareness state ${entry.json.slice(0, 200)} was relayed`,
          );
          // A posing subscription hears only its fellow posers (here: mallory), never the real room.
          if (posing) {
            check(
              entry.json === 'null' || entry.json.includes(`"${actor.userId}"`),
              () => `awareness state ${entry.json.slice(0, 200)} reached posing ${actor.name}`,
            );
          }
        }
      }
    }
    seen = socket.inbox.length;

    if (answer === 'closed') {
      const closed = socket.closed as { code: number; reason: string };
      bump(stats.closes, closed.code);
      const closedWith = () => `the relay closed the socket with ${closed.code} "${closed.reason}"`;
      if (closed.code === 4403 && closed.reason === HIDDEN_REASON && (await hiddenFromOwner(f, actor, doc))) {
        stats.hiddenFromOwner += 1;
        return sent;
      }
      if (expected === 'too-big') check(closed.code === 1009, closedWith);
      else check(expected !== 'open' && closed.code === 4400 && closed.reason !== '', closedWith);
      return sent;
    }
    check(expected === 'open' || expected === 'maybe-close', () => 'the relay kept the socket open');

    // A connection-level ping is answered with its nonce, before the relay processes the next frame.
    if (decoded?.ok && decoded.message.type === 'ping') {
      const { nonce } = decoded.message;
      check(
        between.some((g) => g.docName === '' && g.message.type === 'pong' && g.message.nonce === nonce),
        () => 'no pong for a ping',
      );
      continue;
    }

    // Refusals the relay must answer, before it processes the next frame.
    if (decoded?.ok) {
      const { message, docName } = decoded;
      let canonical: string | null = null;
      try {
        canonical = docName === null ? doc : parseDocName(docName).name;
      } catch {
        check(
          between.some(
            (g) => g.docName === docName && g.message.type === 'error' && g.message.kind === 'BadRequest',
          ),
          () => 'no BadRequest for an invalid doc name',
        );
        stats.refusalsAnswered += 1;
      }
      if (canonical !== null && docName !== null) {
        const answered = (match: (m: Message) => boolean) =>
          between.some((g) => g.docName === canonical && match(g.message));
        if (
          (message.type === 'tracked-update' ||
            message.type === 'enc-append' ||
            message.type === 'enc-snapshot') &&
          (mayWrite(f, actor, canonical) === false ||
            (message.type !== 'tracked-update' &&
              !sealedBy(
                f,
                actor,
                canonical,
                message.type === 'enc-append' ? message.envelope : message.snapshot,
              )))
        ) {
          check(
            answered((m) => m.type === 'error' && m.ref === message.ref),
            () => 'no error for a refused write',
          );
          stats.refusalsAnswered += 1;
        }
        if (
          message.type === 'subscribe' &&
          mayRead(f, actor, canonical) === false &&
          !posesAsAbsent(actor, canonical)
        ) {
          check(
            answered(
              // An absent or hidden document waits; either way nothing of it is sent.
              (m) =>
                (m.type === 'permission' && (m.access === 'none' || m.access === 'waiting')) ||
                (m.type === 'error' && m.ref === 0),
            ),
            () => 'no refusal of a subscription',
          );
          stats.refusalsAnswered += 1;
        }
      }
      if (
        docName === null &&
        frame.valid !== null &&
        (message.type === 'sync-update' || message.type === 'sync-step2') &&
        ordinary.has(Buffer.from(message.update).toString('base64')) &&
        mayWrite(f, actor, doc as string) === false
      ) {
        check(
          between.some((g) => g.message.type === 'permission-denied'),
          () => 'no permission-denied for a read-only write',
        );
        stats.refusalsAnswered += 1;
      }
    }
  }
  await socket.close();
  return sent;
}
