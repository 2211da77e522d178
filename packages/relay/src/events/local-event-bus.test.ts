import type { DocName } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import { LocalEventBus } from './local-event-bus.ts';
import { HTTP_ORIGIN, type RelayEvent } from './relay-events.ts';

const doc = (n: string): DocName => `PUBLIC_RW/_/${n}` as DocName;
const update = (name: DocName, byte: number): RelayEvent => ({
  type: 'doc-updated',
  name,
  update: new Uint8Array([byte]),
  seq: null,
  origin: HTTP_ORIGIN,
});

describe('LocalEventBus', () => {
  it('delivers synchronously while a lane is idle', () => {
    const bus = new LocalEventBus();
    const seen: number[] = [];
    bus.on('doc-updated', (e) => {
      seen.push(e.update[0] as number);
    });
    void bus.publish(update(doc('a'), 1));
    expect(seen).toEqual([1]);
  });

  it('handles an access change fully before a later update of the same document', async () => {
    const bus = new LocalEventBus();
    const order: string[] = [];
    let release!: () => void;
    bus.on('access-changed', async () => {
      order.push('recheck-start');
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      order.push('recheck-end');
    });
    bus.on('doc-updated', (e) => {
      order.push(`update-${e.name}`);
    });
    const narrowed = bus.publish({ type: 'access-changed', name: doc('a'), cause: 'flags' });
    const delivered = bus.publish(update(doc('a'), 1));
    void bus.publish(update(doc('b'), 2)); // another document is not held up
    expect(order).toEqual(['recheck-start', `update-${doc('b')}`]);
    release();
    await narrowed;
    await delivered;
    expect(order).toEqual(['recheck-start', `update-${doc('b')}`, 'recheck-end', `update-${doc('a')}`]);
  });

  it('runs serialized work between events of its lane and passes its result and errors on', async () => {
    const bus = new LocalEventBus();
    const order: string[] = [];
    bus.on('access-changed', async () => {
      await Promise.resolve();
      order.push('event');
    });
    void bus.publish({ type: 'access-changed', name: doc('a'), cause: 'created' });
    const result = bus.serialize(`doc:${doc('a')}`, async () => {
      order.push('admit');
      return 7;
    });
    await expect(result).resolves.toBe(7);
    expect(order).toEqual(['event', 'admit']);
    await expect(bus.serialize('x', async () => Promise.reject(new Error('no')))).rejects.toThrow('no');
  });

  it('starts serialized work on an idle lane at once, and holds the lane’s events until it settled', async () => {
    const bus = new LocalEventBus();
    const order: string[] = [];
    bus.on('doc-updated', (e) => {
      order.push(`update-${e.update[0]}`);
    });
    let release!: () => void;
    const admitted = bus.serialize(`doc:${doc('a')}`, async () => {
      order.push('admit-start');
      // An update published from inside the work, and one while it waits for the store.
      void bus.publish(update(doc('a'), 1));
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      order.push('admit-end');
      return 'admitted';
    });
    expect(order).toEqual(['admit-start']);
    const later = bus.publish(update(doc('a'), 2));
    const queued = bus.serialize(`doc:${doc('a')}`, async () => {
      order.push('second');
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['admit-start']);
    release();
    await expect(admitted).resolves.toBe('admitted');
    await later;
    await queued;
    expect(order).toEqual(['admit-start', 'admit-end', 'update-1', 'update-2', 'second']);
    // Errors of serialized work go to its caller, and the lane goes on.
    await expect(bus.serialize('x', () => Promise.reject(new Error('no')))).rejects.toThrow('no');
    await expect(
      bus.serialize('x', () => {
        throw new Error('thrown');
      }),
    ).rejects.toThrow('thrown');
    await expect(bus.serialize('x', async () => 'next')).resolves.toBe('next');
  });

  it('reports a failing handler and keeps delivering to the others', async () => {
    const errors: unknown[] = [];
    const bus = new LocalEventBus({ log: (_m, c) => errors.push(c.error) });
    const seen: number[] = [];
    bus.on('doc-updated', () => {
      throw new Error('boom');
    });
    bus.on('doc-updated', async () => Promise.reject(new Error('async boom')));
    bus.on('doc-updated', (e) => {
      seen.push(e.update[0] as number);
    });
    await bus.publish(update(doc('a'), 1));
    await bus.publish(update(doc('a'), 2));
    expect(seen).toEqual([1, 2]);
    expect(errors).toHaveLength(4);
  });

  it('remembers when an event that waited for its lane was published, and nothing for one handled at once', async () => {
    const bus = new LocalEventBus();
    let release!: () => void;
    bus.on('doc-updated', (e) => {
      if (e.update[0] === 1) return new Promise<void>((resolve) => (release = resolve));
    });
    const first = update(doc('a'), 1);
    const second = update(doc('a'), 2);
    const done = bus.publish(first);
    const before = performance.now();
    const queued = bus.publish(second);
    expect(bus.publishedAt(first)).toBeUndefined();
    expect(bus.publishedAt(second)).toBeGreaterThanOrEqual(before);
    release();
    await Promise.all([done, queued]);
  });
});
