import type { DocOptions, DocProvider } from '@scopesync/client';
import { useCallback, useMemo } from 'react';
import type { Awareness } from 'y-protocols/awareness';
import { type ChangeSource, useChanges } from './use-changes.ts';
import { useDoc } from './use-doc.ts';

/** An awareness state as this client sees it: its client id and what it published. */
export interface PeerState<S> {
  readonly clientId: number;
  readonly state: S;
}

/** What {@link usePresence} reports: my presence, everyone else's, and how to change mine. */
export interface PresenceState<S extends Record<string, unknown>> {
  /** My client id on the doc (the current Y.Doc's); undefined until the doc is open. */
  readonly clientId: number | undefined;
  /** What I publish; null once I left. */
  readonly local: S | null;
  /**
   * The others on the doc, by client id. `state.user.id` is their real user id (the relay
   * sets it); other fields are theirs to choose. Two tabs of one user are two entries.
   */
  readonly others: readonly PeerState<S>[];
  /** Sets one field of what I publish (e.g. `setLocalField('user', { name, color })`). */
  setLocalField<K extends keyof S & string>(field: K, value: S[K]): void;
}

/**
 * Presence on a document (`<SCOPE>/<namespace>/<key>` or `blob/<id>`): everyone who has it
 * open, live. Opening it announces me (an empty state until I set fields). It follows the
 * doc when a refused edit makes the client rebuild it, so I never show up among the others.
 */
export function usePresence<S extends Record<string, unknown> = Record<string, unknown>>(
  name: string,
  options: DocOptions = {},
): PresenceState<S> {
  const { provider, awareness } = useDoc(name, options);
  const source = useMemo<ChangeSource | undefined>(
    () => provider && ((onChange) => followAwareness(provider, onChange)),
    [provider],
  );
  const version = useChanges(source);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `version` stands for the states.
  const others = useMemo(() => (awareness ? othersOf<S>(awareness) : []), [awareness, version]);
  const setLocalField = useCallback(
    <K extends keyof S & string>(field: K, value: S[K]) => {
      if (provider && !provider.handle.closed) provider.awareness.setLocalStateField(field, value);
    },
    [provider],
  );
  return {
    clientId: awareness?.clientID,
    local: (awareness?.getLocalState() as S | null | undefined) ?? null,
    others,
    setLocalField,
  };
}

/** Calls `onChange` when anyone's state changes, following the awareness across resets. */
function followAwareness(provider: DocProvider, onChange: () => void): () => void {
  let awareness = provider.handle.closed ? undefined : provider.awareness;
  const onStates = () => onChange();
  awareness?.on('change', onStates);
  const stopReset = provider.on('reset', ({ awareness: fresh }) => {
    awareness?.off('change', onStates);
    awareness = fresh;
    awareness.on('change', onStates);
    onChange();
  });
  const stopClosed = provider.on('closed', () => {
    awareness?.off('change', onStates);
    awareness = undefined;
    onChange();
  });
  return () => {
    stopReset();
    stopClosed();
    awareness?.off('change', onStates);
  };
}

function othersOf<S>(awareness: Awareness): PeerState<S>[] {
  const mine = awareness.clientID;
  const peers: PeerState<S>[] = [];
  for (const [clientId, state] of awareness.getStates()) {
    if (clientId !== mine) peers.push({ clientId, state: state as S });
  }
  return peers.sort((a, b) => a.clientId - b.clientId);
}
