import type { Metrics } from '../metrics.ts';
import type { EventBus } from './event-bus.ts';
import type { RelayEventType } from './relay-events.ts';

/** Every domain event type, in the order /metrics lists them. */
export const RELAY_EVENT_TYPES: readonly RelayEventType[] = [
  'doc-updated',
  'doc-committed',
  'doc-write-failed',
  'doc-forgotten',
  'envelope-appended',
  'awareness-changed',
  'access-changed',
  'doc-removed',
  'credential-revoked',
  'level-changed',
];

/**
 * Counts the events handled on a bus by type (`scopesync_events_total{type=…}`): this relay's
 * own and those that came from other relays alike. Returns the function that stops counting.
 */
export function countEvents(bus: EventBus, metrics: Metrics): () => void {
  const events = metrics.labeledCounter(
    'scopesync_events_total',
    'Domain events handled on this relay’s bus, by type (its own and other relays’).',
    'type',
    RELAY_EVENT_TYPES,
  );
  // A synchronous handler: it keeps the bus's synchronous hot path.
  const offs = RELAY_EVENT_TYPES.map((type) => {
    const counter = events.labels(type);
    return bus.on(type, () => counter.inc());
  });
  return () => {
    for (const off of offs) off();
  };
}
