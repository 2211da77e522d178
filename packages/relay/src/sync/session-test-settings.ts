import { Metrics } from '../metrics.ts';
import type { SendBudget, SessionHandler, SessionShared } from './socket-session.ts';

/** A handler for test sessions whose frames do not matter: it drops them. */
export const IGNORE_FRAMES: SessionHandler = { frame: async () => undefined, closed: () => undefined };

/** Session settings for tests whose limits should stay out of the way; a `budget` when the test watches it. */
export function relaxedSessionShared(budget?: SendBudget): SessionShared {
  return {
    limits: {
      maxPendingFrames: 100,
      maxBufferedBytes: 1 << 24,
      maxFramesPerSecond: 1000,
      maxAwarenessBytes: 100,
    },
    log: () => undefined,
    framesOut: new Metrics().counter('frames', 'frames'),
    ...(budget === undefined ? {} : { sendBudget: budget }),
  };
}
