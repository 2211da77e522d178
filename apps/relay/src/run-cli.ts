import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isLevel, isSyncError, type Level } from '@scopesync/core';
import {
  createRelay,
  type ModDefinition,
  RELAY_DB_FILE,
  type Relay,
  type RelayStore,
  registerDevice,
  verifyAuditChain,
} from '@scopesync/relay';
import { SqliteRelayStore } from '@scopesync/store-sqlite';
import { GuestbookMod } from './example-mod.ts';

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Called once `start` listens, with a function that stops the relay (for signal handlers). */
  readonly onStarted?: (relay: Relay) => void;
}

const DEFAULT_PORT = 8787;
const DEFAULT_DATA_DIR = './data';
/** The demo web app's build, served at `/` when present (apps/web/dist, seen from src/ or dist/). */
const WEB_DIST = fileURLToPath(new URL('../../web/dist', import.meta.url));

const USAGE = `scopesync-relay — the scopesync relay

  scopesync-relay start [--port N] [--host H] [--data-dir DIR] [--static-dir DIR] [--example-mod]
      run the relay (env PORT, HOST, DATA_DIR, STATIC_DIR); defaults: 8787, 127.0.0.1, ./data,
      the demo web app from apps/web/dist when it is built
  scopesync-relay admin create --device-name NAME [--data-dir DIR]
      register a new Admin and print {"key": "…", "user_id": "…"} (the key is shown once)
  scopesync-relay level set USER_ID LEVEL [--data-dir DIR]
      set a user's level: 0 guest, 1 user, 5 moderator, 10 admin (or the names)
  scopesync-relay audit verify [--data-dir DIR]
      check the audit log's hash chain: "ok N entries", or name the first broken entry
`;

const LEVEL_NAMES: Readonly<Record<string, Level>> = { guest: 0, user: 1, moderator: 5, admin: 10 };

/** A usage mistake: exit code 2 with the message and the usage. */
class UsageError extends Error {}

/**
 * Runs one CLI command and resolves with the process exit code (0 ok, 1 failed, 2 usage).
 * `start` resolves only once the relay has been stopped (see `onStarted`).
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.err(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  const { positionals, values } = parsed;
  const dataDir = resolve(values['data-dir'] ?? io.env.DATA_DIR ?? DEFAULT_DATA_DIR);
  const command = positionals.slice(0, 2).join(' ');
  try {
    if (values.help || positionals.length === 0 || positionals[0] === 'help') {
      io.out(USAGE);
      return positionals.length === 0 && !values.help ? 2 : 0;
    }
    switch (positionals[0]) {
      case 'start':
        return await start(values, dataDir, io);
      case 'admin':
        if (command !== 'admin create') throw new UsageError(`unknown command: ${command}`);
        return await adminCreate(values['device-name'], dataDir, io);
      case 'level':
        if (command !== 'level set') throw new UsageError(`unknown command: ${command}`);
        return await levelSet(positionals[2], positionals[3], dataDir, io);
      case 'audit':
        if (command !== 'audit verify') throw new UsageError(`unknown command: ${command}`);
        return await auditVerify(dataDir, io);
      default:
        throw new UsageError(`unknown command: ${positionals[0]}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`${error.message}\n\n${USAGE}`);
      return 2;
    }
    io.err(
      `scopesync-relay: ${isSyncError(error) || error instanceof Error ? error.message : String(error)}`,
    );
    return 1;
  }
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      'static-dir': { type: 'string' },
      'device-name': { type: 'string' },
      'example-mod': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

type Values = ReturnType<typeof parse>['values'];

async function start(values: Values, dataDir: string, io: CliIo): Promise<number> {
  const rawPort = values.port ?? io.env.PORT ?? String(DEFAULT_PORT);
  if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) > 65535)
    throw new UsageError(`--port must be 0–65535, got ${rawPort}`);
  const staticDir =
    values['static-dir'] ??
    io.env.STATIC_DIR ??
    (existsSync(join(WEB_DIST, 'index.html')) ? WEB_DIST : undefined);
  const mods: ModDefinition[] = values['example-mod'] ? [new GuestbookMod()] : [];
  const relay = createRelay({
    port: Number(rawPort),
    host: values.host ?? io.env.HOST ?? '127.0.0.1',
    dataDir,
    mods,
    ...(staticDir === undefined ? {} : { staticDir: resolve(staticDir) }),
  });
  try {
    const { url } = await relay.listen();
    io.out(
      `scopesync relay listening on ${url} (data in ${dataDir}${staticDir ? `, web app from ${staticDir}` : ''})`,
    );
  } catch (error) {
    await relay.close();
    throw error;
  }
  io.onStarted?.(relay);
  // Whoever stops the relay (a signal handler, a test), `start` returns once it has stopped.
  await relay.whenClosed;
  return 0;
}

async function withStore<T>(
  dataDir: string,
  create: boolean,
  fn: (store: RelayStore) => Promise<T>,
): Promise<T> {
  if (create) mkdirSync(dataDir, { recursive: true });
  else if (!existsSync(join(dataDir, RELAY_DB_FILE))) throw new Error(`no relay data in ${dataDir}`);
  const store: RelayStore = new SqliteRelayStore({ path: join(dataDir, RELAY_DB_FILE) });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function adminCreate(deviceName: string | undefined, dataDir: string, io: CliIo): Promise<number> {
  if (deviceName === undefined) throw new UsageError('admin create needs --device-name NAME');
  const { key, userId } = await withStore(dataDir, true, (store) =>
    registerDevice(store, { deviceName, level: 10 }),
  );
  io.out(JSON.stringify({ key, user_id: userId }));
  return 0;
}

async function levelSet(
  userId: string | undefined,
  rawLevel: string | undefined,
  dataDir: string,
  io: CliIo,
): Promise<number> {
  if (userId === undefined || rawLevel === undefined) throw new UsageError('level set needs USER_ID LEVEL');
  const level =
    LEVEL_NAMES[rawLevel.toLowerCase()] ?? (/^\d+$/.test(rawLevel) ? Number(rawLevel) : Number.NaN);
  if (!isLevel(level))
    throw new UsageError(`LEVEL must be 0, 1, 5, 10 or guest, user, moderator, admin; got ${rawLevel}`);
  const found = await withStore(dataDir, false, (store) => store.setUserLevel(userId, level));
  if (!found) {
    io.err(`scopesync-relay: no user ${userId} in ${dataDir}`);
    return 1;
  }
  io.out(`${userId} is now level ${level}`);
  return 0;
}

async function auditVerify(dataDir: string, io: CliIo): Promise<number> {
  const result = await withStore(dataDir, false, (store) => verifyAuditChain(store));
  if (result.ok) {
    io.out(`ok ${result.entries} entries`);
    return 0;
  }
  io.err(`audit chain broken at entry ${result.seq}${result.id ? ` (${result.id})` : ''}: ${result.problem}`);
  return 1;
}
