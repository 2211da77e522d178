import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Level, Level as Levels } from '@scopesync/core';
import { createRelay, type Relay, type RelayOptions } from '@scopesync/relay';
import { afterAll, beforeAll } from 'vitest';
import { type CallOptions, call, type HttpAnswer } from './http-client.ts';

/** A registered user: its API key and id. */
export interface TestUser {
  readonly key: string;
  readonly userId: string;
}

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
  user(deviceName?: string, level?: Level): Promise<TestUser>;
  /** One HTTP request to this relay (see {@link call}). */
  api(method: string, path: string, options?: CallOptions): Promise<HttpAnswer>;
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
      if (level === 'warn' || level === 'error')
        console.error(`[relay ${level}] ${message}`, context?.error ?? '');
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
    api: (method, path, options) => call(url, method, path, options),
    close: () => {
      closing ??= (async () => {
        await relay.close();
        if (ownDir) await rm(dataDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

/**
 * The relay of one test file: started with `options` before its tests (in the first
 * `beforeAll`, so later hooks can register users) and closed after them. Its members are the
 * started relay's; using them outside tests and hooks throws.
 */
export function useTestRelay(options: RelayOptions = {}): TestRelay {
  let started: TestRelay | undefined;
  beforeAll(async () => {
    started = await startTestRelay(options);
  });
  afterAll(() => started?.close());
  const current = (): TestRelay => {
    if (started === undefined) throw new Error('useTestRelay: the relay runs only inside tests and hooks');
    return started;
  };
  return {
    get url() {
      return current().url;
    },
    get wsUrl() {
      return current().wsUrl;
    },
    get relay() {
      return current().relay;
    },
    get dataDir() {
      return current().dataDir;
    },
    user: (deviceName, level) => current().user(deviceName, level),
    api: (method, path, options) => current().api(method, path, options),
    close: () => current().close(),
  };
}
