import { type DocName, isSyncError, Level } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import type { RelayEvent } from '../events/relay-events.ts';
import {
  type ClusterEvent,
  decodeClusterEvents,
  decodeHeartbeat,
  encodeClusterEvent,
  encodeClusterEvents,
  encodeHeartbeat,
  isClusterEvent,
} from './cluster-codec.ts';

const name = 'PUBLIC_RW/_/notes' as DocName;
const local = { source: 'socket', session: 3 } as const;

describe('cluster codec', () => {
  it('round-trips every forwarded event, with the sender as origin', () => {
    const events: RelayEvent[] = [
      { type: 'doc-committed', name, seq: 7, update: new Uint8Array([1, 2, 3]), origin: local },
      { type: 'doc-updated', name, update: new Uint8Array([1, 2]), seq: null, origin: local },
      { type: 'doc-write-failed', name },
      {
        type: 'envelope-appended',
        name: 'blob/x' as DocName,
        entry: { seq: 9, envelope: new Uint8Array([4]) },
        origin: local,
      },
      { type: 'awareness-changed', name, update: new Uint8Array([5, 6]), origin: local },
      { type: 'access-changed', name, cause: 'share' },
      { type: 'doc-removed', name },
      { type: 'credential-revoked', credential: 'ab'.repeat(32) },
      { type: 'level-changed', userId: 'user_0123456789abcdef', level: Level.Moderator },
    ];
    for (const event of events) {
      expect(isClusterEvent(event)).toBe(true);
      if (!isClusterEvent(event)) continue;
      const { relayId, events: back } = decodeClusterEvents(encodeClusterEvent('relay-a', event));
      expect(relayId).toBe('relay-a');
      const expected =
        'origin' in event ? { ...event, origin: { source: 'relay', relayId: 'relay-a' } } : event;
      expect(back).toEqual([expected]);
    }
  });

  it('carries several events in one message, in their order, and one event as it always did', () => {
    const events: ClusterEvent[] = [
      { type: 'doc-updated', name, update: new Uint8Array([1, 2]), seq: null, origin: local },
      { type: 'access-changed', name, cause: 'created' },
      { type: 'doc-committed', name, seq: 7, update: new Uint8Array([1, 2]), origin: local },
      { type: 'awareness-changed', name, update: new Uint8Array([5]), origin: local },
    ];
    const { relayId, events: back } = decodeClusterEvents(encodeClusterEvents('relay-b', events));
    expect(relayId).toBe('relay-b');
    const from = { source: 'relay', relayId: 'relay-b' };
    expect(back).toEqual(events.map((event) => ('origin' in event ? { ...event, origin: from } : event)));
    // A lone event is the bytes a relay that knows no batches reads.
    const [first] = events as [ClusterEvent];
    expect(encodeClusterEvents('relay-b', [first])).toEqual(encodeClusterEvent('relay-b', first));
    expect(() => encodeClusterEvents('relay-b', [])).toThrow();
  });

  it('forwards an update as applied (before its commit), but never the copy that carries a seq', () => {
    expect(
      isClusterEvent({ type: 'doc-updated', name, update: new Uint8Array([1]), seq: null, origin: local }),
    ).toBe(true);
    expect(
      isClusterEvent({ type: 'doc-updated', name, update: new Uint8Array([1]), seq: 4, origin: local }),
    ).toBe(false);
  });

  it('refuses malformed bytes with InvalidMessage, never anything else, and a batch with a bad event whole', () => {
    const good = encodeClusterEvent('r', { type: 'doc-removed', name });
    const removed = { type: 'doc-removed', name } as const;
    const batch = encodeClusterEvents('r', [removed, removed]);
    // The header (version 1, relay id 'r'), the batch tag (126), then a count.
    const withCount = (count: number) => new Uint8Array([1, 1, 114, 126, count, ...batch.subarray(5)]);
    expect(decodeClusterEvents(withCount(2)).events).toHaveLength(2);
    const cases = [
      new Uint8Array([]),
      new Uint8Array([2]),
      good.subarray(0, good.length - 1),
      new Uint8Array([...good, 0]),
      encodeClusterEvent('r', { type: 'doc-removed', name: '../etc/passwd' as DocName }),
      encodeClusterEvents('r', [removed, { type: 'doc-removed', name: '../etc/passwd' as DocName }]),
      batch.subarray(0, batch.length - 1),
      withCount(0),
      withCount(1),
      withCount(3),
      withCount(127),
    ];
    for (const bytes of cases) {
      let error: unknown;
      try {
        decodeClusterEvents(bytes);
      } catch (e) {
        error = e;
      }
      expect(isSyncError(error, 'InvalidMessage')).toBe(true);
    }
  });

  it('tells a heartbeat (with its stamp) from an event, and an event is never taken for one', () => {
    expect(decodeHeartbeat(encodeHeartbeat('r', 1234.5))).toBe(1234.5);
    expect(decodeHeartbeat(encodeClusterEvent('r', { type: 'doc-removed', name }))).toBeNull();
    expect(decodeHeartbeat(new Uint8Array([]))).toBeNull();
    // Other relays drop a heartbeat as a malformed event, never as anything else.
    expect(() => decodeClusterEvents(encodeHeartbeat('r', 1))).toThrow();
    expect(
      decodeHeartbeat(
        encodeClusterEvents('r', [
          { type: 'doc-removed', name },
          { type: 'doc-removed', name },
        ]),
      ),
    ).toBeNull();
  });
});
