import { SyncError } from '@scopesync/core';
import type { ClusterTransport } from './cluster-transport.ts';
import { DeliveryLease } from './delivery-lease.ts';
import { NarrowingFence } from './narrowing-fence.ts';

/** The default delivery lease L, in ms (see `RelayCluster.leaseMs`). */
export const DEFAULT_LEASE_MS = 1000;

/** What {@link clusterLeaseOf} reads of a relay's cluster options. */
export interface ClusterLeaseOptions {
  readonly transport?: ClusterTransport | undefined;
  readonly leaseMs?: number | undefined;
  readonly heartbeatMs?: number | undefined;
}

/** A relay's two halves of the delivery lease, and how often it publishes its heartbeat. */
export interface ClusterLease {
  readonly lease: DeliveryLease;
  readonly fence: NarrowingFence;
  readonly heartbeatMs: number;
}

/**
 * The delivery lease and narrowing fence of a relay whose transport echoes its own messages;
 * null without one (one relay, or a transport that cannot prove what it delivered: today's
 * behaviour, no waits). Throws BadRequest for a heartbeat slower than half the lease.
 */
export function clusterLeaseOf(
  cluster: ClusterLeaseOptions | undefined,
  log: (level: 'warn' | 'error', message: string, context?: Record<string, unknown>) => void,
): ClusterLease | null {
  if (cluster?.transport?.onEcho === undefined) return null;
  const leaseMs = cluster.leaseMs ?? DEFAULT_LEASE_MS;
  const heartbeatMs = cluster.heartbeatMs ?? Math.min(200, leaseMs / 5);
  if (!(leaseMs > 0) || !(heartbeatMs > 0) || heartbeatMs * 2 > leaseMs) {
    throw new SyncError(
      'BadRequest',
      'cluster.heartbeatMs must be positive and at most half of cluster.leaseMs',
    );
  }
  return { lease: new DeliveryLease({ leaseMs }), fence: new NarrowingFence({ leaseMs, log }), heartbeatMs };
}
