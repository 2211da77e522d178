import type { ChangeOrigin, DocForgotten, DocUpdated, EnvelopeAppended } from '../events/relay-events.ts';
import { FrameCache } from './frame-cache.ts';
import type { Subscription } from './subscription.ts';

// What a document's subscribers are sent when it changes: each frame encoded once per endpoint
// kind, not once per socket, and only to the subscriptions of the right mode. Whether they may
// read it now is SubscriptionRegistry's to settle before it calls these.

/** Sends a plaintext update to every plaintext subscriber but its writer. */
export function pushUpdate(subs: Iterable<Subscription>, event: DocUpdated): void {
  const frames = new FrameCache(event.name, { type: 'sync-update', update: event.update });
  for (const sub of subs) {
    if (sub.mode !== 'plaintext' || isEchoOf(event.origin, sub)) continue;
    sub.pushFrame(frames.for(sub));
  }
}

/** Asks every plaintext reader of a reloaded document for what it holds beyond the relay's copy. */
export function pushAskBack(subs: Iterable<Subscription>, event: DocForgotten): void {
  const frames = new FrameCache(event.name, { type: 'sync-step1', stateVector: event.stateVector });
  for (const sub of subs) {
    if (sub.mode === 'plaintext') sub.pushFrame(frames.for(sub));
  }
}

/** Sends an envelope to every active encrypted subscriber but its writer (buffered while one catches up). */
export function pushEnvelope(subs: Iterable<Subscription>, event: EnvelopeAppended): void {
  const frames = new FrameCache(event.name, {
    type: 'enc-entries',
    headSeq: event.entry.seq,
    entries: [event.entry],
  });
  for (const sub of subs) {
    if (sub.mode !== 'encrypted' || !sub.active || sub.posing || isEchoOf(event.origin, sub)) continue;
    if (sub.liveBuffer) sub.liveBuffer.push(event.entry);
    else sub.pushFrame(frames.for(sub));
  }
}

function isEchoOf(origin: ChangeOrigin, sub: Subscription): boolean {
  return origin.source === 'socket' && origin.session === sub.session.id;
}
