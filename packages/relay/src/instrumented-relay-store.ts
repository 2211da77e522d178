import type { ImmediateRelayReads, RelayStore } from '@scopesync/core';
import type { Histogram } from './metrics.ts';

/**
 * Wraps a {@link RelayStore} so that every call's latency lands in `seconds` (exported at
 * GET /metrics). Methods run on the original object, so stores with `#private` fields work.
 * A `transaction` is observed as one call, from its start to its commit or rollback (time
 * spent waiting for an earlier transaction included); the calls through its `tx` are not
 * observed one by one, so the histogram counts each piece of work once. The reads of
 * `immediateReads` are observed as they return, in the caller's turn.
 */
export function instrumentRelayStore(store: RelayStore, seconds: Histogram): RelayStore {
  // One wrapper per method, made on first use: every upgrade calls the store several times,
  // and a wrapper made per call was a closure (and a context) each time.
  const wrappers = new Map<PropertyKey, { member: unknown; wrapper: unknown }>();
  const observed = new WeakMap<ImmediateRelayReads, ImmediateRelayReads>();
  const immediate = (member: () => ImmediateRelayReads | null) => (): ImmediateRelayReads | null => {
    const reads = member.call(store);
    if (reads === null) return null;
    let timed = observed.get(reads);
    if (timed === undefined) {
      timed = timedReads(reads, seconds);
      observed.set(reads, timed);
    }
    return timed;
  };
  return new Proxy(store, {
    get(target, property) {
      const member: unknown = Reflect.get(target, property, target);
      if (typeof member !== 'function') return member;
      const cached = wrappers.get(property);
      if (cached?.member === member) return cached.wrapper;
      const wrapper =
        property === 'immediateReads'
          ? immediate(member as () => ImmediateRelayReads | null)
          : timedMethod(target, member as (...args: unknown[]) => unknown, seconds);
      wrappers.set(property, { member, wrapper });
      return wrapper;
    },
  });
}

/** `member` called on `target` with its arguments untouched, its latency observed when it settles. */
function timedMethod(
  target: object,
  member: (...args: unknown[]) => unknown,
  seconds: Histogram,
): (...args: unknown[]) => unknown {
  return (...args: unknown[]): unknown => {
    const started = performance.now();
    const result: unknown = member.apply(target, args);
    if (result instanceof Promise) {
      return result.finally(() => seconds.observe((performance.now() - started) / 1000));
    }
    return result;
  };
}

/** The same reads, each observed as it returns (or throws): no promise, no closure per call. */
function timedReads(reads: ImmediateRelayReads, seconds: Histogram): ImmediateRelayReads {
  return {
    getKeyHolder(keyHash) {
      const started = performance.now();
      try {
        return reads.getKeyHolder(keyHash);
      } finally {
        seconds.observe((performance.now() - started) / 1000);
      }
    },
    getObject(name) {
      const started = performance.now();
      try {
        return reads.getObject(name);
      } finally {
        seconds.observe((performance.now() - started) / 1000);
      }
    },
    listShares(blobId) {
      const started = performance.now();
      try {
        return reads.listShares(blobId);
      } finally {
        seconds.observe((performance.now() - started) / 1000);
      }
    },
  };
}
