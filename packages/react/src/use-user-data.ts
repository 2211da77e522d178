import {
  DATA_MAP,
  type DocHandle,
  type JsonObject,
  type SyncClient,
  type SyncError,
  type UserDataWriteOptions,
} from '@scopesync/client';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { asSyncError } from './as-sync-error.ts';
import { useClient } from './client-context.ts';
import { followDoc } from './follow-doc.ts';
import { type ChangeSource, useChanges } from './use-changes.ts';

/** What {@link useUserData} reports about one value, and how to change it. */
export interface UserDataState<T extends JsonObject> {
  /** The value; undefined while there is none (or while loading). */
  readonly value: T | undefined;
  /** True until the local copy is loaded (the first value shown is what this device has). */
  readonly loading: boolean;
  /** True while the value is caught up with the relay. */
  readonly synced: boolean;
  /** True while this client has writes the relay has not acknowledged. */
  readonly pending: boolean;
  /** Why the value could not be read (Forbidden, BadRequest), the last refused write, or why it closed. */
  readonly error: SyncError | undefined;
  /** Replaces the value (`client.userData.set`); resolves once durable locally. */
  set(value: T, options?: UserDataWriteOptions): Promise<void>;
  /** Changes some fields (`client.userData.update`); resolves once durable locally. */
  update(fields: Partial<T>, options?: UserDataWriteOptions): Promise<void>;
}

interface Opened {
  readonly client: SyncClient;
  readonly name: string;
  readonly handle?: DocHandle;
  readonly error?: SyncError;
}

/**
 * A live userdata value, `<SCOPE>/<namespace>/<key>` (e.g. `USER_PUBLIC/${userId}/profile`): it
 * shows what the local store holds at once (offline too), then every change — this client's
 * writes, and other clients' as the relay delivers them — without polling.
 */
export function useUserData<T extends JsonObject = JsonObject>(name: string): UserDataState<T> {
  const client = useClient();
  const [opened, setOpened] = useState<Opened>();
  useEffect(() => {
    let handle: DocHandle;
    try {
      handle = client.doc(name);
    } catch (error) {
      setOpened({ client, name, error: asSyncError(error) });
      return;
    }
    setOpened({ client, name, handle });
    return () => {
      void handle.release();
    };
  }, [client, name]);
  const current = opened?.client === client && opened.name === name ? opened : undefined;
  const handle = current?.handle;

  const loaded = useRef<DocHandle>(undefined);
  const lastError = useRef<{ handle: DocHandle; error: SyncError }>(undefined);
  const source = useMemo<ChangeSource | undefined>(
    () =>
      handle &&
      ((onChange) => {
        let live = true;
        void handle.whenLoaded.then(
          () => {
            loaded.current = handle;
            if (live) onChange();
          },
          (error: unknown) => {
            lastError.current = { handle, error: asSyncError(error) };
            if (live) onChange();
          },
        );
        const stops = [
          followDoc(handle, onChange),
          handle.on('pending', onChange),
          handle.on('synced', onChange),
          handle.on('permission', onChange),
          handle.on('error', (error) => {
            lastError.current = { handle, error };
            onChange();
          }),
        ];
        return () => {
          live = false;
          for (const stop of stops) stop();
        };
      }),
    [handle],
  );
  const version = useChanges(source);
  // A fresh copy only when something changed, so the value is stable between re-renders.
  // biome-ignore lint/correctness/useExhaustiveDependencies: `version` stands for the doc's content.
  const value = useMemo(() => (handle ? readValue<T>(handle) : undefined), [handle, version]);

  const [scope, ns, key] = splitName(name);
  const set = useCallback(
    (next: T, options?: UserDataWriteOptions) => client.userData.set(scope, ns, key, next, options),
    [client, scope, ns, key],
  );
  const update = useCallback(
    (fields: Partial<T>, options?: UserDataWriteOptions) =>
      client.userData.update(scope, ns, key, fields as JsonObject, options),
    [client, scope, ns, key],
  );
  return {
    value,
    loading: !handle || loaded.current !== handle,
    synced: handle?.synced ?? false,
    pending: (handle?.pending ?? 0) > 0,
    error: current?.error ?? (lastError.current?.handle === handle ? lastError.current?.error : undefined),
    set,
    update,
  };
}

function readValue<T extends JsonObject>(handle: DocHandle): T | undefined {
  const map = handle.doc.getMap(DATA_MAP);
  return map.size === 0 ? undefined : (map.toJSON() as T);
}

/** `<SCOPE>/<namespace>/<key>` → its parts (the key may hold slashes); the client validates them. */
function splitName(name: string): [string, string, string] {
  const first = name.indexOf('/');
  const second = name.indexOf('/', first + 1);
  if (first < 0 || second < 0) return [name, '', ''];
  return [name.slice(0, first), name.slice(first + 1, second), name.slice(second + 1)];
}
