import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Level, Level as Levels } from '@scopesync/core';
import { createRelay, type Relay, type RelayOptions } from '@scopesync/relay';

/** A relay started for one test file. */
export interface TestRelay {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** `ws://127.0.0.1:<port>`. */
  readonly wsUrl: string;
  readonly relay: Relay;
  /** The SQLite data dir (in the OS temp dir), removed by `close()`. */
  readonly dataDir: string;
  /** Registers a user at `level` directly through the runtime (how the CLI makes admins). */
  user(deviceName?: string, level?: Level): Promise<{ key: string; userId: string }>;
  /** Closes the relay and removes the data dir. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a real relay on 127.0.0.1, port 0, over SQLite files in a fresh temp dir, quiet
 * (warnings only). Pass options to override (mods, limits, rateLimit, staticDir, …); pass
 * `dataDir` to reuse a directory (then `close()` leaves it).
 */
export async function startTestRelay(options: RelayOptions = {}): Promise<TestRelay> {
  const ownDir = options.dataDir === undefined && options.stores === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'scopesync-relay-')));
  const relay = createRelay({
    port: 0,
    host: '127.0.0.1',
    closeGraceMs: 1000,
    log: (level, message, context) => {
      if (level !== 'info') console.error(`[relay ${level}] ${message}`, context?.error ?? '');
    },
    ...options,
    ...(options.stores === undefined ? { dataDir } : {}),
  });
  let url: string;
  try {
    url = (await relay.listen()).url;
  } catch (error) {
    await relay.close();
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  let closing: Promise<void> | null = null;
  let counter = 0;
  return {
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    relay,
    dataDir,
    user: async (deviceName = `device-${++counter}`, level: Level = Levels.User) =>
      relay.runtime.createUser({ deviceName, level }),
    close: () => {
      closing ??= (async () => {
        await relay.close();
        if (ownDir) await rm(dataDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
