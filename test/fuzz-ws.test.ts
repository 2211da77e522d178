import { seeds } from '@scopesync/testing';
import { describe, it } from 'vitest';
import { runWsFuzz } from './support/ws-fuzz.ts';

// Seeded fuzzing of the WebSocket endpoints of a relay on SQLite (support/ws-fuzz.ts says what
// is checked; the chaos suite runs the same fuzz on PostgreSQL too).

const FRAMES = 10_000;

describe('WebSocket fuzzing', () => {
  for (const seed of seeds(1)) {
    it(`survives ${FRAMES} random and mutated frames on both endpoints without touching protected data (seed ${seed})`, async () => {
      await runWsFuzz({ backend: 'sqlite', seed, frames: FRAMES });
    });
  }
});
