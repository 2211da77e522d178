import { seeds } from '@scopesync/testing';
import { describe, it } from 'vitest';
import { runHttpFuzz } from './support/http-fuzz.ts';

// Seeded fuzzing of the HTTP API of a relay on SQLite (support/http-fuzz.ts says what is
// checked; the chaos suite runs the same fuzz on PostgreSQL too).

const REQUESTS = 10_000;
const RAW_GARBAGE = 200;

describe('HTTP fuzzing', () => {
  for (const seed of seeds(1)) {
    it(`survives ${REQUESTS} random requests without 5xx or changes by failed requests (seed ${seed})`, async () => {
      await runHttpFuzz({ backend: 'sqlite', seed, requests: REQUESTS, rawGarbage: RAW_GARBAGE });
    });
  }
});
