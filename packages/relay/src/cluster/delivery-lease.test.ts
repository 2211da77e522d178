import { describe, expect, it } from 'vitest';
import { DeliveryLease } from './delivery-lease.ts';

/** A lease on a clock the test moves. */
function leaseAt(start = 1000): { lease: DeliveryLease; clock: { now: number } } {
  const clock = { now: start };
  return { lease: new DeliveryLease({ leaseMs: 100, now: () => clock.now }), clock };
}

describe('DeliveryLease', () => {
  it('holds for the lease after the heartbeat whose echo came back, not after the echo', () => {
    const { lease, clock } = leaseAt();
    expect(lease.fresh()).toBe(false); // no echo yet
    const sentAt = lease.stamp();
    clock.now += 60; // the echo took 60 ms
    expect(lease.echoed(sentAt)).toBeNull();
    expect(lease.fresh()).toBe(true);
    clock.now = sentAt + 100;
    expect(lease.fresh()).toBe(true);
    clock.now = sentAt + 101;
    expect(lease.fresh()).toBe(false);
  });

  it('an older echo never shortens the lease', () => {
    const { lease, clock } = leaseAt();
    const first = lease.stamp();
    clock.now += 50;
    const second = lease.stamp();
    lease.echoed(second);
    lease.echoed(first);
    clock.now = second + 100;
    expect(lease.fresh()).toBe(true);
  });

  it('after a loss, trusts no echo of a heartbeat sent before it, and holds again only once the sockets were checked', async () => {
    const { lease, clock } = leaseAt();
    const before = lease.stamp();
    clock.now += 10;
    lease.lost();
    expect(lease.fresh()).toBe(false);
    // The echo of a heartbeat sent before the loss arrives after the re-subscription: no proof.
    expect(lease.echoed(before)).toBeNull();
    expect(lease.fresh()).toBe(false);
    clock.now += 10;
    const after = lease.stamp();
    clock.now += 10;
    const revalidating = lease.echoed(after);
    expect(revalidating).not.toBeNull();
    // Further echoes meanwhile start no second check and do not make it fresh.
    expect(lease.echoed(lease.stamp())).toBeNull();
    expect(lease.fresh()).toBe(false);
    let finish!: () => void;
    revalidating?.(new Promise<void>((resolve) => (finish = resolve)));
    expect(lease.fresh()).toBe(false);
    finish();
    await Promise.resolve();
    await Promise.resolve();
    expect(lease.fresh()).toBe(true);
  });

  it('a check that started before another loss does not bring the lease back', async () => {
    const { lease, clock } = leaseAt();
    lease.lost();
    clock.now += 10;
    const revalidating = lease.echoed(lease.stamp());
    let finish!: () => void;
    revalidating?.(new Promise<void>((resolve) => (finish = resolve)));
    clock.now += 10;
    lease.lost();
    finish();
    await Promise.resolve();
    await Promise.resolve();
    expect(lease.fresh()).toBe(false);
  });
});
