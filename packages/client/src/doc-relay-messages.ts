// What a DocHandle does with the relay's messages about its doc: access granted, waiting or lost, acks, refusals and presence.
import {
  type Address,
  type DocAccess,
  type ErrorKind,
  type Message,
  SyncError,
  unreachable,
} from '@scopesync/core';
import type { Deferred } from './deferred.ts';
import { deniedDocError } from './denied-doc.ts';
import type { DocChannel } from './doc-channel.ts';
import type { DocHandleEvents } from './doc-handle-events.ts';
import type { DocPresence } from './doc-presence.ts';
import type { DroppedEdits } from './dropped-edits.ts';
import type { LocalDocLog } from './local-doc-log.ts';
import { FINAL_REFUSALS, TRANSIENT_REFUSALS } from './refusal-kinds.ts';
import type { ResendSchedule } from './resend-schedule.ts';
import type { ResubscribeSchedule } from './resubscribe-schedule.ts';
import { isSubscribed, type SubscriptionPhase } from './subscription-phase.ts';

/**
 * What {@link receiveFromRelay} may use of its {@link DocHandle}: the doc's log, channel and
 * presence, the subscription's phase and access, and the handle's own steps (reset, close, events).
 */
export interface DocRelayHost {
  readonly name: string;
  readonly address: Address;
  readonly log: LocalDocLog;
  readonly channel: DocChannel;
  readonly presence: DocPresence;
  /** Edits dropped for good, so whenAcked can tell a refusal from an ack. */
  readonly dropped: DroppedEdits;
  readonly resends: ResendSchedule;
  readonly resubscribes: ResubscribeSchedule;
  /** Settles the handle's whenSynced. */
  readonly synced: Deferred<void>;
  /** The subscription on the current socket. */
  phase(): SubscriptionPhase;
  /** Moves the subscription to its next phase (checked against the allowed moves). */
  enter(next: SubscriptionPhase): void;
  /** Access as the relay last reported it. */
  access(): DocAccess | undefined;
  setAccess(access: DocAccess): void;
  /** Emits one of the handle's events. */
  emit<K extends keyof DocHandleEvents>(event: K, value: DocHandleEvents[K]): void;
  /** Rebuilds the doc from the local store (dropping unconfirmed edits when `dropPending`). */
  reset(dropPending: boolean): Promise<void>;
  /** Stops the handle for good. */
  close(reason: string): void;
}

/** Handles a message from the relay about the doc (all but the channel's own go through here first). */
export async function receiveFromRelay(host: DocRelayHost, message: Message): Promise<void> {
  switch (message.type) {
    case 'permission':
      await onPermission(host, message.access, message.reason);
      return;
    case 'ack':
      host.resends.acked();
      await host.channel.ack(message.ref, message.seq);
      return;
    case 'error':
      await onError(host, message.ref, message.kind, message.message);
      return;
    case 'permission-denied':
      host.emit(
        'error',
        new SyncError('Forbidden', message.reason || `the relay refused a write to ${host.name}`),
      );
      return;
    case 'awareness': {
      // Encrypted docs: states arrive sealed under the doc key and are opened first.
      await host.presence.receive(message.update);
      return;
    }
    case 'query-awareness':
      host.presence.answerQuery();
      return;
    default:
      if (await host.channel.receive(message)) return;
      // Client-to-relay messages, or the other channel's, have no business arriving here.
      host.emit('error', new SyncError('InvalidMessage', `unexpected ${message.type} for ${host.name}`));
  }
}

async function onPermission(host: DocRelayHost, access: DocAccess, reason: string): Promise<void> {
  switch (access) {
    case 'waiting':
      if (host.access() === 'read' || host.access() === 'read-write') {
        // We could read it before: since deleted or unshared (while we were away). Drop our
        // copy as on a revocation: what we may no longer see must not stay on this device.
        await lose(host, access, reason, 'the document is gone or hidden from you');
        return;
      }
      // Absent or hidden (the same to us): keep the handle and the local copy; the relay keeps
      // the subscription and sends permission again (then the sync) once the doc is readable.
      host.setAccess(access);
      if (isSubscribed(host.phase())) host.enter({ kind: 'waiting' });
      host.emit('permission', { access, reason });
      await host.log.updateMeta({ access, accessReason: reason });
      return;
    case 'none':
      await lose(host, access, reason, reason);
      return;
    case 'read':
    case 'read-write':
      await onGranted(host, access, reason);
      return;
    default:
      unreachable(access);
  }
}

async function onGranted(host: DocRelayHost, access: 'read' | 'read-write', reason: string): Promise<void> {
  host.setAccess(access);
  const phase = host.phase();
  if (isSubscribed(phase)) {
    const admitted = phase.kind !== 'active';
    // A change of access on a live subscription keeps it caught up.
    const synced = phase.kind === 'active' && phase.synced;
    host.enter({ kind: 'active', access, synced });
    if (admitted) host.presence.announce();
  }
  host.emit('permission', { access, reason });
  await host.log.updateMeta({ access, accessReason: reason });
  await host.channel.granted(access);
  if (access === 'read' && host.log.pendingCount > 0) {
    const error = new SyncError(
      'Forbidden',
      `${host.name} is read-only for you; ${host.log.pendingCount} unsent edit(s) were discarded`,
    );
    host.emit('error', error);
    // Discarded is not acknowledged: the next whenAcked to settle reports it.
    host.dropped.add(error);
    await host.reset(true);
  }
}

/** Access ended (revoked, never granted, gone): stop syncing and drop the local copy and its unsendable edits. */
async function lose(
  host: DocRelayHost,
  access: 'none' | 'waiting',
  reason: string,
  why: string,
): Promise<void> {
  host.setAccess('none');
  host.emit('permission', { access, reason });
  host.synced.reject(new SyncError('Forbidden', why || `no access to ${host.name}`));
  if (!host.log.holdsConfirmed() && host.log.pendingCount > 0) {
    // Nothing here came from the relay: only our own unsent edits (a taken blob id). Keep them; stop (denied-doc.ts).
    const error = deniedDocError(host.address, reason);
    host.emit('denied', { error });
    host.emit('error', error);
    host.close(`denied: ${error.message}`);
    return;
  }
  await host.log.purge().catch(() => undefined);
  host.close(`access revoked${why ? `: ${why}` : ''}`);
}

async function onError(host: DocRelayHost, ref: number, kind: ErrorKind, text: string): Promise<void> {
  const error = new SyncError(kind, text || `the relay refused a request about ${host.name}`);
  if (ref === 0) {
    // The relay ended this doc's subscription; the next socket subscribes again, and so
    // does this one after a backoff when the cause is transient (its store was down).
    if (isSubscribed(host.phase())) host.enter({ kind: 'ended', reason: error });
    host.channel.detach();
    host.synced.reject(error);
    host.emit('error', error);
    if (TRANSIENT_REFUSALS.has(kind)) host.resubscribes.ended();
    return;
  }
  const refusal = await host.channel.refused(ref, error);
  if (refusal === 'settled') return;
  host.emit('error', error);
  if (refusal === 'refused' && FINAL_REFUSALS.has(kind)) {
    host.dropped.add(error);
    // The relay will never take these edits: drop them and rebuild from confirmed state;
    // the re-sync that follows brings back everything the relay has.
    await host.reset(true);
  } else if (refusal === 'refused' && TRANSIENT_REFUSALS.has(kind)) {
    // Transient (the relay's store failed the commit, the relay is shutting down): the relay
    // may already have shown the edits to other readers, so they must reach its store.
    host.resends.refused();
  }
}
