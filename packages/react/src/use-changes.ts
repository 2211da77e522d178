import { useCallback, useRef, useSyncExternalStore } from 'react';

/** Subscribes `onChange` to something; returns the function that stops it. */
export type ChangeSource = (onChange: () => void) => () => void;

/**
 * A number that goes up every time `source` reports a change: a component that reads it
 * re-renders on each change (through `useSyncExternalStore`, so concurrent rendering cannot
 * tear). `source` must be stable (memoised) for as long as it means the same thing. Each
 * subscription counts one change at once, for what happened between a render and the effect.
 */
export function useChanges(source: ChangeSource | undefined): number {
  const version = useRef(0);
  const subscribe = useCallback(
    (onChange: () => void) => {
      if (!source) return () => undefined;
      const changed = () => {
        version.current += 1;
        onChange();
      };
      const stop = source(changed);
      // What changed between the render and this subscription (an effect runs later) went
      // unheard: count one change, so the component renders what is there now.
      changed();
      return stop;
    },
    [source],
  );
  const read = () => version.current;
  return useSyncExternalStore(subscribe, read, read);
}
