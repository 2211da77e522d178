import type { RelayStore } from '@scopesync/core';
import type { Histogram } from './metrics.ts';

/**
 * Wraps a {@link RelayStore} so that every call's latency lands in `seconds` (exported at
 * GET /metrics). Methods run on the original object, so stores with `#private` fields work.
 * A `transaction` is observed as one call, from its start to its commit or rollback (time
 * spent waiting for an earlier transaction included); the calls through its `tx` are not
 * observed one by one, so the histogram counts each piece of work once.
 */
export function instrumentRelayStore(store: RelayStore, seconds: Histogram): RelayStore {
  return new Proxy(store, {
    get(target, property) {
      const member: unknown = Reflect.get(target, property, target);
      if (typeof member !== 'function') return member;
      // Every method, `transaction` included, is forwarded with its arguments untouched.
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
