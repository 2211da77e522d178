import { MemoryDocStore, parseDocName, type RelayStore } from '@scopesync/core';
import { describe, expect, it } from 'vitest';
import { DocHub } from './documents/doc-hub.ts';
import { LocalEventBus } from './events/local-event-bus.ts';
import { RUNTIME_ORIGIN } from './events/relay-events.ts';
import { Metrics } from './metrics.ts';
import { removeObject } from './remove-object.ts';

const NOTES = parseDocName('PUBLIC_RW/_/notes').name;

describe('removeObject', () => {
  it('removes metadata, then content, then announces the removal before re-checking access', async () => {
    const docs = new MemoryDocStore();
    const bus = new LocalEventBus();
    const hub = new DocHub({ store: docs, bus, metrics: new Metrics(), log: () => undefined });
    await hub.transact(NOTES, (doc) => doc.getMap('data').set('a', 1), RUNTIME_ORIGIN);
    const order: string[] = [];
    const store = {
      deleteObject: async () => {
        order.push('metadata');
        return true;
      },
    } as unknown as RelayStore;
    bus.on('doc-removed', async (event) => {
      // The content is gone by the time the removal is announced.
      order.push(`announced ${event.name} with ${(await docs.load(NOTES)).length} entries`);
    });
    const refreshAccess = async (): Promise<void> => {
      order.push('refresh');
    };
    expect(await removeObject({ store, hub, bus, refreshAccess }, NOTES)).toBe(true);
    expect(order).toEqual(['metadata', `announced ${NOTES} with 0 entries`, 'refresh']);
    await hub.close();
  });
});
