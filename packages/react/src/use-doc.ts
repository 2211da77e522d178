import {
  type DocAccess,
  type DocOptions,
  type DocProvider,
  type SyncClient,
  SyncError,
} from '@scopesync/client';
import { useEffect, useMemo, useRef, useState } from 'react';
import type { Awareness } from 'y-protocols/awareness';
import type * as Y from 'yjs';
import { asSyncError } from './as-sync-error.ts';
import { useClient } from './client-context.ts';
import { followDoc } from './follow-doc.ts';
import { type ChangeSource, useChanges } from './use-changes.ts';

/** What {@link useDoc} reports about an open document. */
export interface DocState {
  /**
   * The document as an editor provider (`doc`, `awareness`, `bind()` …); undefined on the first
   * render (it opens in an effect) and when it could not be opened (see `error`).
   */
  readonly provider: DocProvider | undefined;
  /** The Y.Doc; a new one after a refused edit made the handle rebuild it (the hook re-renders). */
  readonly doc: Y.Doc | undefined;
  /** Presence on the doc; replaced together with `doc`. */
  readonly awareness: Awareness | undefined;
  /** True while the doc is caught up with the relay. */
  readonly synced: boolean;
  /** Access as the relay reported it; undefined before its first answer. */
  readonly access: DocAccess | undefined;
  /** True when this client may only read the doc: bind editors read-only. */
  readonly readOnly: boolean;
  /** Local edits the relay has not acknowledged yet. */
  readonly pending: number;
  /** Why the doc could not be opened, the last refused edit, or why it closed (access revoked). */
  readonly error: SyncError | undefined;
  /** True once the doc stopped syncing for good (access revoked). */
  readonly closed: boolean;
}

interface Opened {
  readonly client: SyncClient;
  readonly key: string;
  readonly provider?: DocProvider;
  readonly error?: SyncError;
}

const PROVIDER_EVENTS = ['status', 'sync', 'reset', 'permission', 'unsyncedChanges', 'closed'] as const;

/**
 * Opens a document (`<SCOPE>/<namespace>/<key>` or `blob/<id>`) for as long as the component is
 * mounted, and re-renders when its sync state, access or Y.Doc changes (not on every edit: use
 * {@link useDocSelector} to read content). Safe under StrictMode's double effects: each effect
 * takes its own reference on the client's one handle and gives it back on cleanup.
 */
export function useDoc(name: string, options: DocOptions = {}): DocState {
  const client = useClient();
  const { read, write, encrypted } = options;
  const key = `${name}\u0000${read}\u0000${write}\u0000${encrypted}`;
  const [opened, setOpened] = useState<Opened>();
  useEffect(() => {
    let provider: DocProvider;
    try {
      provider = client.provider(name, { read, write, encrypted });
    } catch (error) {
      setOpened({ client, key, error: asSyncError(error) });
      return;
    }
    setOpened({ client, key, provider });
    return () => {
      void provider.destroy();
    };
  }, [client, name, read, write, encrypted, key]);

  // What an earlier name (or client) opened is not this doc: show nothing until this one opens.
  const current = opened?.key === key && opened.client === client ? opened : undefined;
  const provider = current?.provider;
  const lastError = useRef<{ provider: DocProvider; error: SyncError }>(undefined);
  const source = useMemo<ChangeSource | undefined>(
    () =>
      provider &&
      ((onChange) => {
        const stops = PROVIDER_EVENTS.map((event) => provider.on(event, onChange));
        stops.push(
          provider.on('error', (error) => {
            lastError.current = { provider, error };
            onChange();
          }),
          provider.on('closed', ({ reason }) => {
            const kind = reason.startsWith('access revoked') ? 'Forbidden' : 'Unavailable';
            lastError.current = { provider, error: new SyncError(kind, reason) };
            onChange();
          }),
        );
        return () => {
          for (const stop of stops) stop();
        };
      }),
    [provider],
  );
  useChanges(source);
  const error =
    current?.error ?? (lastError.current?.provider === provider ? lastError.current?.error : undefined);
  if (!provider) {
    return {
      provider: undefined,
      doc: undefined,
      awareness: undefined,
      synced: false,
      access: undefined,
      readOnly: true,
      pending: 0,
      error,
      closed: false,
    };
  }
  const handle = provider.handle;
  return {
    provider,
    doc: provider.doc,
    awareness: handle.closed ? undefined : provider.awareness,
    synced: provider.synced,
    access: handle.access,
    readOnly: provider.readOnly,
    pending: handle.pending,
    error,
    closed: handle.closed,
  };
}

/**
 * Reads the open document's content: `select(doc)` runs on each render, and the component
 * re-renders after every change of the doc (local, remote, or a rebuilt doc). Undefined while
 * the doc is not open.
 */
export function useDocSelector<T>(
  provider: DocProvider | undefined,
  select: (doc: Y.Doc) => T,
): T | undefined {
  const source = useMemo<ChangeSource | undefined>(
    () => provider && ((onChange) => followDoc(provider, onChange)),
    [provider],
  );
  useChanges(source);
  return provider ? select(provider.doc) : undefined;
}
