import type { DocName } from '@scopesync/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { FeedEvent } from '../documents/doc-feed.ts';
import { LocalEventBus } from '../events/local-event-bus.ts';
import type { RelayEvent } from '../events/relay-events.ts';
import { decodeClusterEvents, encodeClusterEvents } from './cluster-codec.ts';
import { ClusterLink } from './cluster-link.ts';
import type { ClusterTransport } from './cluster-transport.ts';
import { NarrowingFence } from './narrowing-fence.ts';

// What a relay hands its transport, on a transport that records every message (the Redis one is
// tested against a real Redis in cluster-link-lease.test.ts and test/cluster-*.test.ts).

const name = 'PUBLIC_RW/_/notes' as DocName;
const fromSocket = { source: 'socket', session: 1 } as const;
const update = (byte: number): RelayEvent => ({
  type: 'doc-updated',
  name,
  update: new Uint8Array([byte]),
  seq: null,
  origin: fromSocket,
});

/**
 * A transport that keeps what is sent, answers it only when the test says so (Redis's answer
 * comes a round trip later), and lets the test deliver another relay's messages.
 */
function recordingTransport() {
  const sent: Uint8Array[] = [];
  const unanswered: Array<() => void> = [];
  const handlers: Array<(message: Uint8Array) => void> = [];
  const transport: ClusterTransport = {
    relayId: 'relay-a',
    send: (message) => {
      sent.push(message);
      return new Promise((resolve) => unanswered.push(() => resolve(true)));
    },
    onMessage: (handler) => handlers.push(handler),
    onReconnect: () => undefined,
    close: async () => undefined,
  };
  const deliver = (message: Uint8Array): void => {
    for (const handler of handlers) handler(message);
  };
  const answer = async (): Promise<void> => {
    for (const resolve of unanswered.splice(0)) resolve();
    await Promise.resolve();
  };
  return { transport, sent, deliver, answer };
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function linked(options: { fence?: NarrowingFence } = {}) {
  const { transport, sent, deliver, answer } = recordingTransport();
  const bus = new LocalEventBus();
  const docEvents: FeedEvent[] = [];
  const link = new ClusterLink({
    bus,
    transport,
    docEvents: (event) => docEvents.push(event),
    catchUp: () => undefined,
    log: () => undefined,
    fence: options.fence,
  });
  closers.push(async () => {
    await link.close();
    await bus.close();
  });
  return { bus, sent, deliver, answer, docEvents, link };
}

/** The types of the events in each message sent. */
const typesOf = (sent: readonly Uint8Array[]) =>
  sent.map((message) => decodeClusterEvents(message).events.map((event) => event.type));

/** Lets the loop finish its turn (the link sends what the turn forwarded at its end). */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('ClusterLink', () => {
  it('sends a lone event at once, and while one is unanswered what the turn forwards as one message at its end', async () => {
    const { bus, sent, answer } = linked();
    await bus.publish(update(1));
    expect(typesOf(sent)).toEqual([['doc-updated']]);
    await Promise.all([
      bus.publish({ type: 'doc-committed', name, seq: 1, update: new Uint8Array([1]), origin: fromSocket }),
      bus.publish({ type: 'access-changed', name, cause: 'created' }),
      bus.publish(update(2)),
    ]);
    expect(sent).toHaveLength(1);
    await nextTurn();
    expect(typesOf(sent)).toEqual([['doc-updated'], ['doc-committed', 'access-changed', 'doc-updated']]);
    const third = decodeClusterEvents(sent[1] as Uint8Array).events[2];
    expect(third).toMatchObject({ type: 'doc-updated', update: new Uint8Array([2]) });
    // Both answered: the next event has nothing ahead of it again.
    await answer();
    await bus.publish(update(3));
    expect(sent).toHaveLength(3);
  });

  it('sends a narrowing alone, after everything forwarded before it, so the fence waits on its own PUBLISH', async () => {
    const { bus, sent } = linked({ fence: new NarrowingFence({ leaseMs: 1 }) });
    await bus.publish(update(1));
    await bus.publish(update(2));
    await bus.publish({ type: 'access-changed', name, cause: 'share' });
    await bus.publish(update(3));
    await nextTurn();
    expect(typesOf(sent)).toEqual([['doc-updated'], ['doc-updated'], ['access-changed'], ['doc-updated']]);
  });

  it('splits a turn that forwards more than a message carries', async () => {
    const { bus, sent } = linked();
    await Promise.all(Array.from({ length: 300 }, (_, i) => bus.publish(update(i % 256))));
    await nextTurn();
    expect(typesOf(sent).map((types) => types.length)).toEqual([1, 256, 43]);
  });

  it('sends what is pending when it closes', async () => {
    const { bus, sent, link } = linked();
    await bus.publish(update(1));
    await bus.publish(update(2));
    await link.close();
    expect(typesOf(sent)).toEqual([['doc-updated'], ['doc-updated']]);
  });

  it("takes another relay's batch as its events, in order", async () => {
    const { bus, deliver, docEvents } = linked();
    const seen: string[] = [];
    bus.on('access-changed', (event) => {
      seen.push(`${event.type}:${docEvents.length}`);
    });
    deliver(
      encodeClusterEvents('relay-b', [
        { type: 'doc-updated', name, update: new Uint8Array([7]), seq: null, origin: fromSocket },
        { type: 'access-changed', name, cause: 'flags' },
        { type: 'doc-committed', name, seq: 3, update: new Uint8Array([7]), origin: fromSocket },
      ]),
    );
    await nextTurn();
    expect(docEvents.map((event) => event.type)).toEqual(['doc-updated', 'doc-committed']);
    expect(docEvents[0]).toMatchObject({ origin: { source: 'relay', relayId: 'relay-b' } });
    // The access change was published when the first document event had been handed on.
    expect(seen).toEqual(['access-changed:1']);
  });
});
