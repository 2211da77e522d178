import type { RelayStore } from '@scopesync/core';
import type { Histogram } from './metrics.ts';

/**
 * Wraps a {@link RelayStore} so that every call's latency lands in `seconds` (exported at
 * GET /metrics). Methods run on the original object, so stores with `#private` fields work.
 */
export function instrumentRelayStore(store: RelayStore, seconds: Histogram): RelayStore {
  return new Proxy(store, {
    get(target, property) {
      const member: unknown = Reflect.get(target, property, target);
      if (typeof member !== 'function') return member;
      return (...args: unknown[]): unknown => {
        const started = performance.now();
        const result: unknown = member.apply(target, args);
        if (result instanceof Promise) {
          return result.finally(() => seconds.observe((performance.now() - started) / 1000));
        }
        return result;
      };
    },
  });
}
