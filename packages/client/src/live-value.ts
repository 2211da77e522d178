import { SyncError } from '@scopesync/core';
import type * as Y from 'yjs';
import type { DocHandle } from './doc-handle.ts';
import { docOriginOf } from './doc-origin.ts';
import type { Unsubscribe } from './typed-events.ts';

/** Where the change that produced a snapshot came from. */
export type ValueSource =
  /** The first snapshot: what the local store held when the subscription started. */
  | 'local-store'
  /** This client wrote it (through `userData.set/update` or an edit of the doc). */
  | 'local'
  /** Another tab of this browser wrote it (offline too). */
  | 'tab'
  /** The relay delivered it: another client's write, or this client's catch-up after a reconnect. */
  | 'relay'
  /** Only the metadata changed (the relay acknowledged our writes, or the doc caught up). */
  | 'metadata';

/** What comes with each snapshot of a {@link UserData.subscribe} subscription. */
export interface ValueMeta {
  /** True while this client has writes the relay has not acknowledged (Firestore's `hasPendingWrites`). */
  readonly pending: boolean;
  /** True once the value has caught up with the relay at least once since the subscription started. */
  readonly synced: boolean;
  /** What changed. */
  readonly source: ValueSource;
}

/** Receives the value (undefined when there is none) and its {@link ValueMeta}. */
export type ValueListener<T> = (value: T | undefined, meta: ValueMeta) => void;

/** Receives why a subscription stopped for good (access revoked, handle closed): no call follows. */
export type ValueErrorListener = (error: SyncError) => void;

/**
 * Follows one doc's value: calls `listener` once the local copy is loaded, then after every
 * change of the value (local, other tab, relay) and whenever `pending` or `synced` flips. Takes
 * over the caller's reference to `handle` and releases it when the returned function is called.
 */
export function followValue<T>(
  handle: DocHandle,
  read: (doc: Y.Doc) => T | undefined,
  listener: ValueListener<T>,
  onError: ValueErrorListener | undefined,
): Unsubscribe {
  let stopped = false;
  let last: { json: string; pending: boolean; synced: boolean } | undefined;
  let synced = false;
  /** A local edit is in the doc but not yet counted in the outbox (stored a moment later). */
  let storing = false;
  let doc = handle.doc;

  const emit = (source: ValueSource): void => {
    if (stopped) return;
    const value = read(handle.doc);
    const json = JSON.stringify(value ?? null);
    const pending = storing || handle.pending > 0;
    if (last && last.json === json && last.pending === pending && last.synced === synced) return;
    const valueChanged = !last || last.json !== json;
    last = { json, pending, synced };
    listener(value === undefined ? undefined : (JSON.parse(json) as T), {
      pending,
      synced,
      source: valueChanged ? source : 'metadata',
    });
  };
  const onUpdate = (_update: Uint8Array, origin: unknown): void => {
    // Before the first snapshot there is nothing to compare with: the load emits it.
    if (!last) return;
    const from = docOriginOf(origin)?.source;
    if (from === undefined || from === 'tab' || from === 'reseal') storing = true;
    emit(from === 'relay' ? 'relay' : from === 'tab' ? 'tab' : 'local');
  };
  doc.on('update', onUpdate);
  const offs: Unsubscribe[] = [
    handle.on('reset', ({ doc: fresh }) => {
      doc.off('update', onUpdate);
      doc = fresh;
      doc.on('update', onUpdate);
      if (last) emit('relay');
    }),
    handle.on('pending', () => {
      storing = false;
      if (last) emit('local');
    }),
    handle.on('synced', () => {
      synced = true;
      if (last) emit('relay');
    }),
    handle.on('closed', ({ reason }) => {
      if (stopped) return;
      const error = new SyncError(
        reason.startsWith('access revoked') ? 'Forbidden' : 'Unavailable',
        `the subscription to ${handle.name} ended: ${reason}`,
      );
      stop();
      onError?.(error);
    }),
  ];
  handle.whenLoaded.then(
    () => emit('local-store'),
    (error: SyncError) => {
      if (stopped) return;
      stop();
      onError?.(error);
    },
  );

  function stop(): void {
    if (stopped) return;
    stopped = true;
    doc.off('update', onUpdate);
    for (const off of offs) off();
    void handle.release();
  }
  return stop;
}
