import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isLevel, isSyncError, type Level, parseUserId } from '@scopesync/core';
import {
  AUDIT_ANCHOR_FILE,
  AUDIT_KEY_FILE,
  createRelay,
  DEFAULT_LEASE_MS,
  encodeClusterEvent,
  issueApiKey,
  type ModDefinition,
  parseDeviceName,
  RELAY_DB_FILE,
  RedisTransport,
  type Relay,
  type RelayEvent,
  type RelayLog,
  type RelayOptions,
  type RelayStore,
  readAuditAnchor,
  readAuditKey,
  registerDevice,
  staticRootProblem,
  verifyAuditChain,
} from '@scopesync/relay';
import { PostgresRelayStore, redactUrl } from '@scopesync/store-postgres';
import { SqliteRelayStore } from '@scopesync/store-sqlite';
import { authOptionsOf } from './auth-settings.ts';
import { backupDataDir, restoreDataDir } from './backup.ts';
import { openEngines } from './engines.ts';
import { GuestbookMod } from './example-mod.ts';
import {
  isOn,
  LOG_LEVELS,
  type LogLevel,
  listItems,
  type ResolvedSettings,
  resolveSettings,
  SETTINGS,
  SettingError,
  settingsHelp,
} from './settings.ts';

/** Where the CLI writes; injectable for tests. */
export interface CliIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Called once `start` listens, with a function that stops the relay (for signal handlers). */
  readonly onStarted?: (relay: Relay) => void;
}

/** The demo web app's build, served at `/` with --demo when present (apps/web/dist, seen from src/ or dist/). */
const WEB_DIST = fileURLToPath(new URL('../../web/dist', import.meta.url));

const USAGE = `scopesync-relay — the scopesync relay

  scopesync-relay start [settings]
      run the relay; SIGTERM or SIGINT stops it (WebSockets closed with 1001, writes committed)
  scopesync-relay admin create --device-name NAME [--data-dir DIR]
      register a new Admin and print {"key": "…", "user_id": "…"} (the key is shown once)
  scopesync-relay issue-key --user USER_ID [--device-name NAME] [--data-dir DIR | --database-url URL]
      issue a new API key for an existing user and print {"key": "…", "user_id": "…"} (shown once;
      the relay keeps its hash): how users get keys with --registration closed (docs/auth.md)
  scopesync-relay level set USER_ID LEVEL --relay-url URL [--key ADMIN_KEY]
      set a user's level through a running relay (PUT /users/<id>/level as an Admin; the key
      also from SCOPESYNC_ADMIN_KEY): the user's open WebSockets follow at once
  scopesync-relay level set USER_ID LEVEL [--data-dir DIR | --database-url URL [--redis-url URL]]
      set a user's level in the store directly: 0 guest, 1 user, 5 moderator, 10 admin (or the
      names); running relays see it on the next request, open WebSockets later (see docs/relay.md)
  scopesync-relay audit verify [--data-dir DIR] [--audit-dir DIR | --audit-key-file F --audit-anchor-file F]
      check the audit log's chain with the audit key and against its anchor: "ok N entries",
      or name the first broken entry (exit 1)
  scopesync-relay backup --out DIR [--data-dir DIR]
      copy relay.sqlite and docs.sqlite into a new directory with a manifest, safely while the
      relay runs (SQLite's online backup; never copy the live files by hand)
  scopesync-relay restore --from DIR [--data-dir DIR] [--force]
      put a backup into a data dir; refuses one that is not empty (unless --force) and one a
      running relay holds

Settings of start (a flag wins over its environment variable, which wins over the default):
${settingsHelp()}
`;

const LEVEL_NAMES: Readonly<Record<string, Level>> = { guest: 0, user: 1, moderator: 5, admin: 10 };

/** A usage mistake: one line on stderr, exit code 2. */
class UsageError extends Error {}

/**
 * Runs one CLI command and resolves with the process exit code (0 ok, 1 failed, 2 usage).
 * `start` resolves only once the relay has been stopped (see `onStarted`).
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const usageError = (message: string): number => {
    io.err(`scopesync-relay: ${message} (scopesync-relay --help lists commands and settings)`);
    return 2;
  };
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    return usageError(describeParseError(error));
  }
  const { positionals, values } = parsed;
  if (values.help || positionals[0] === 'help') {
    io.out(USAGE);
    return 0;
  }
  if (positionals.length === 0) {
    io.err(USAGE);
    return 2;
  }
  const dataDir = resolve(values['data-dir'] ?? (io.env.DATA_DIR || DEFAULT_DATA_DIR));
  const databaseUrl = values['database-url'] ?? (io.env.DATABASE_URL || undefined);
  const target: StoreTarget =
    databaseUrl === undefined
      ? { dataDir }
      : {
          databaseUrl,
          schema: values['database-schema'] ?? (io.env.SCOPESYNC_DATABASE_SCHEMA || 'scopesync'),
        };
  const redisUrl = values['redis-url'] ?? (io.env.REDIS_URL || undefined);
  const redis =
    redisUrl === undefined
      ? undefined
      : {
          url: redisUrl,
          prefix: values['redis-prefix'] ?? (io.env.SCOPESYNC_REDIS_PREFIX || 'scopesync'),
          leaseMs: Number(
            values['cluster-lease-ms'] ?? (io.env.SCOPESYNC_CLUSTER_LEASE_MS || DEFAULT_LEASE_MS),
          ),
        };
  const command = positionals.slice(0, 2).join(' ');
  try {
    switch (positionals[0]) {
      case 'start':
        return await start(values, io);
      case 'admin':
        if (command !== 'admin create') throw new UsageError(`unknown command: ${command}`);
        return await adminCreate(values['device-name'], target, io);
      case 'issue-key':
        if (positionals.length > 1) throw new UsageError(`unknown command: ${command}`);
        return await issueKey(values.user, values['device-name'], target, io);
      case 'level':
        if (command !== 'level set') throw new UsageError(`unknown command: ${command}`);
        return await levelSet(positionals[2], positionals[3], target, redis, io, {
          relayUrl: values['relay-url'],
          key: values.key ?? (io.env.SCOPESYNC_ADMIN_KEY || undefined),
        });
      case 'audit':
        if (command !== 'audit verify') throw new UsageError(`unknown command: ${command}`);
        return await auditVerify(
          target,
          auditFiles(values, io.env, 'dataDir' in target ? dataDir : undefined),
          io,
        );
      case 'backup':
        return await backup(values.out, dataDir, io);
      case 'restore':
        return await restore(values.from, dataDir, values.force === true, io);
      default:
        throw new UsageError(`unknown command: ${positionals[0]}`);
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof SettingError) return usageError(error.message);
    io.err(
      `scopesync-relay: ${isSyncError(error) || error instanceof Error ? error.message : String(error)}`,
    );
    return 1;
  }
}

const DEFAULT_DATA_DIR = './data';

/** Every flag: the settings of `start` (switches are booleans) and the commands' own. */
const OPTIONS = {
  ...Object.fromEntries(
    SETTINGS.map((s) => [
      s.flag,
      { type: s.placeholder === '' ? ('boolean' as const) : ('string' as const) },
    ]),
  ),
  // Also settings; named here so that the other commands' `values` know them.
  'data-dir': { type: 'string' },
  'database-url': { type: 'string' },
  'database-schema': { type: 'string' },
  'redis-url': { type: 'string' },
  'redis-prefix': { type: 'string' },
  'cluster-lease-ms': { type: 'string' },
  'device-name': { type: 'string' },
  user: { type: 'string' },
  'relay-url': { type: 'string' },
  key: { type: 'string' },
  out: { type: 'string' },
  from: { type: 'string' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parse(argv: readonly string[]) {
  return parseArgs({ args: [...argv], allowPositionals: true, strict: true, options: OPTIONS });
}

/** parseArgs' errors in one short line ("unknown option --x", "--port needs a value"). */
function describeParseError(error: unknown): string {
  const { code, message } = error as { code?: string; message?: string };
  const option = /'(-[^' ]+)/.exec(message ?? '')?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option) return `unknown option ${option}`;
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
    if (/ambiguous/.test(message ?? ''))
      return `${option} needs a value; write ${option}=VALUE for one that starts with -`;
    if (/does not take/.test(message ?? '')) return `${option} takes no value`;
    return `${option} needs a value`;
  }
  return (message ?? String(error)).split('\n')[0] ?? 'invalid arguments';
}

type Values = ReturnType<typeof parse>['values'];

/** The relay's options from the resolved settings. */
function relayOptions(settings: ResolvedSettings): RelayOptions {
  const int = (flag: string): number => Number(settings.get(flag));
  const staticDir = staticDirOf(settings);
  const metricsPort = settings.get('metrics-port');
  const metricsToken = settings.get('metrics-token');
  const trustedProxies = listItems(settings.get('trusted-proxies'));
  const mods: ModDefinition[] = isOn(settings.get('example-mod')) ? [new GuestbookMod()] : [];
  return {
    port: int('port'),
    host: settings.get('host') ?? '127.0.0.1',
    dataDir: resolve(settings.get('data-dir') ?? DEFAULT_DATA_DIR),
    sqliteCacheKiB: { relay: int('relay-db-cache-kib'), docs: int('docs-db-cache-kib') },
    mods,
    ...(staticDir === undefined ? {} : { staticDir: resolve(staticDir) }),
    corsOrigins: listItems(settings.get('cors-origins') ?? '*'),
    ...(trustedProxies.length === 0 ? {} : { trustedProxies }),
    ...(metricsPort === undefined && metricsToken === undefined
      ? {}
      : {
          metricsEndpoint: {
            ...(metricsToken === undefined ? {} : { token: metricsToken }),
            ...(metricsPort === undefined
              ? {}
              : { port: Number(metricsPort), host: settings.get('metrics-host') ?? '127.0.0.1' }),
          },
        }),
    requestTimeoutMs: int('request-timeout-ms'),
    limits: {
      maxBodyBytes: int('max-body-bytes'),
      sync: {
        maxFrameBytes: int('max-frame-bytes'),
        maxDocsPerConnection: int('max-docs-per-connection'),
        maxStringBytes: int('max-string-bytes'),
        maxEntriesPerPage: int('max-entries-per-page'),
        maxPageBytes: int('max-page-bytes'),
        maxPendingFrames: int('max-pending-frames'),
        maxBufferedBytes: int('max-buffered-bytes'),
        maxAwarenessClients: int('max-awareness-clients'),
        maxAwarenessBytes: int('max-awareness-bytes'),
        maxFramesPerSecond: int('max-frames-per-second'),
        maxCallerFramesPerSecond: int('max-caller-frames-per-second'),
        maxSocketsPerCaller: int('max-sockets-per-caller'),
        maxTotalBufferedBytes: int('max-total-buffered-bytes'),
      },
    },
    rateLimit:
      settings.get('rate-limit') === 'off'
        ? false
        : {
            capacity: int('rate-limit-burst'),
            refillPerSecond: int('rate-limit-per-second'),
            maxBuckets: int('rate-limit-callers'),
          },
    docs: {
      idleMs: int('doc-idle-ms'),
      compactAfter: int('compact-after'),
      maxBytes: int('max-doc-bytes'),
      maxBytesByScope: Object.fromEntries(
        listItems(settings.get('max-doc-bytes-by-scope')).map((item) => {
          const [scope, bytes] = item.split('=');
          return [scope, Number(bytes)];
        }),
      ),
    },
    closeGraceMs: int('close-grace-ms'),
    pingIntervalMs: int('ping-interval-ms'),
    ...withAudit(
      auditFilesOf(
        settings.get('audit-dir'),
        settings.get('audit-key-file'),
        settings.get('audit-anchor-file'),
        settings.get('database-url') === undefined
          ? resolve(settings.get('data-dir') ?? DEFAULT_DATA_DIR)
          : undefined,
      ),
    ),
    log: jsonLinesLog((settings.get('log-level') ?? 'warn') as LogLevel),
    auth: authOptionsOf(settings),
  };
}

/**
 * The directory served at `/`: none with --no-static; else --static-dir (or STATIC_DIR; an empty
 * variable counts as unset, so it serves nothing rather than the working directory); else, with
 * --demo, the demo web app when it is built; else none — a bare `start` serves only the API.
 */
function staticDirOf(settings: ResolvedSettings): string | undefined {
  if (isOn(settings.get('no-static'))) return undefined;
  const given = settings.get('static-dir');
  if (given !== undefined) return given;
  return isOn(settings.get('demo')) && existsSync(join(WEB_DIST, 'index.html')) ? WEB_DIST : undefined;
}

/** The relay's log as JSON lines on stderr, from `least` up. */
function jsonLinesLog(least: LogLevel): RelayLog {
  const shown = new Set(LOG_LEVELS.slice(LOG_LEVELS.indexOf(least)));
  return (level, message, context) => {
    if (!shown.has(level)) return;
    const entry: Record<string, unknown> = {
      time: new Date().toISOString(),
      level,
      source: 'relay',
      message,
      ...context,
    };
    const cause = context?.error;
    if (cause instanceof Error)
      entry.error = { name: cause.name, message: cause.message, stack: cause.stack };
    process.stderr.write(`${JSON.stringify(entry)}\n`);
  };
}

async function start(values: Values, io: CliIo): Promise<number> {
  const flags: Record<string, string | undefined> = {};
  for (const s of SETTINGS) {
    const value = (values as Readonly<Record<string, string | boolean | undefined>>)[s.flag];
    flags[s.flag] = value === true ? 'on' : typeof value === 'string' ? value : undefined;
  }
  const settings = resolveSettings(flags, io.env);
  const options = relayOptions(settings);
  const databaseUrl = settings.get('database-url');
  if (options.staticDir !== undefined) {
    const problem = staticRootProblem(
      options.staticDir,
      databaseUrl === undefined && options.dataDir !== undefined ? [options.dataDir] : [],
    );
    if (problem !== null) throw new SettingError(`--static-dir: ${problem}`);
  }
  if (databaseUrl === undefined && settings.get('redis-url') !== undefined) {
    throw new SettingError('--redis-url needs --database-url: relays share their state through PostgreSQL');
  }
  const engines =
    databaseUrl === undefined
      ? null
      : await openEngines({
          databaseUrl,
          databaseSchema: settings.get('database-schema') ?? 'scopesync',
          redisUrl: settings.get('redis-url'),
          redisPrefix: settings.get('redis-prefix') ?? 'scopesync',
          rateLimit:
            options.rateLimit === false || options.rateLimit === undefined
              ? false
              : (options.rateLimit as { capacity: number; refillPerSecond: number }),
          log: options.log ?? (() => undefined),
        });
  const { dataDir, ...rest } = options;
  const relay = createRelay(
    engines === null
      ? options
      : {
          ...rest,
          stores: engines.stores,
          cluster: { ...engines.cluster, leaseMs: Number(settings.get('cluster-lease-ms')) },
          ...(engines.rateLimit === undefined ? {} : { rateLimit: engines.rateLimit }),
        },
  );
  const where =
    engines === null
      ? `data in ${dataDir}`
      : `data in PostgreSQL ${redactUrl(databaseUrl as string)}${settings.get('redis-url') ? ', fan-out through Redis' : ''}`;
  try {
    const { url } = await relay.listen();
    if (databaseUrl !== undefined && options.audit === undefined) {
      options.log?.(
        'warn',
        'the audit chain is unkeyed and unanchored: give every relay the same --audit-dir (docs/security.md)',
      );
    }
    io.out(
      `scopesync relay listening on ${url} (${where}${options.staticDir ? `, web app from ${options.staticDir}` : ''}${relay.metricsUrl ? `, metrics on ${relay.metricsUrl}/metrics` : ''})`,
    );
  } catch (error) {
    await relay.close();
    await engines?.close();
    throw error;
  }
  io.onStarted?.(relay);
  // Whoever stops the relay (a signal handler, a test), `start` returns once it has stopped.
  await relay.whenClosed;
  await engines?.close();
  return 0;
}

async function backup(out: string | undefined, dataDir: string, io: CliIo): Promise<number> {
  if (out === undefined) throw new UsageError('backup needs --out DIR');
  const manifest = await backupDataDir(dataDir, resolve(out));
  const files = Object.entries(manifest.files).map(
    ([name, file]) => `${name} (schema ${file.schema_version}, ${file.bytes} bytes)`,
  );
  io.out(`backed up ${dataDir} to ${resolve(out)}: ${files.join(', ')}`);
  return 0;
}

async function restore(
  from: string | undefined,
  dataDir: string,
  force: boolean,
  io: CliIo,
): Promise<number> {
  if (from === undefined) throw new UsageError('restore needs --from DIR');
  const manifest = await restoreDataDir(resolve(from), dataDir, { force });
  io.out(`restored ${dataDir} from ${resolve(from)} (backup of ${manifest.started_at})`);
  return 0;
}

/** Where the admin commands find the relay's records: its SQLite data dir, or PostgreSQL. */
type StoreTarget = { readonly dataDir: string } | { readonly databaseUrl: string; readonly schema: string };

async function withStore<T>(
  target: StoreTarget,
  create: boolean,
  fn: (store: RelayStore) => Promise<T>,
): Promise<T> {
  let store: RelayStore;
  if ('databaseUrl' in target) {
    store = await PostgresRelayStore.open({ url: target.databaseUrl, schema: target.schema });
  } else {
    const { dataDir } = target;
    if (create) mkdirSync(dataDir, { recursive: true });
    else if (!existsSync(join(dataDir, RELAY_DB_FILE))) throw new Error(`no relay data in ${dataDir}`);
    store = new SqliteRelayStore({ path: join(dataDir, RELAY_DB_FILE) });
  }
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function adminCreate(deviceName: string | undefined, target: StoreTarget, io: CliIo): Promise<number> {
  if (deviceName === undefined) throw new UsageError('admin create needs --device-name NAME');
  const { key, userId } = await withStore(target, true, (store) =>
    registerDevice(store, { deviceName, level: 10 }),
  );
  io.out(JSON.stringify({ key, user_id: userId }));
  return 0;
}

async function issueKey(
  userId: string | undefined,
  deviceName: string | undefined,
  target: StoreTarget,
  io: CliIo,
): Promise<number> {
  if (userId === undefined) throw new UsageError('issue-key needs --user USER_ID');
  const id = parseUserId(userId);
  if (deviceName !== undefined) parseDeviceName(deviceName);
  const { key } = await withStore(target, false, (store) => issueApiKey(store, id));
  io.out(JSON.stringify({ key, user_id: id }));
  return 0;
}

async function levelSet(
  userId: string | undefined,
  rawLevel: string | undefined,
  target: StoreTarget,
  redis: { readonly url: string; readonly prefix: string; readonly leaseMs: number } | undefined,
  io: CliIo,
  through: { readonly relayUrl: string | undefined; readonly key: string | undefined },
): Promise<number> {
  if (userId === undefined || rawLevel === undefined) throw new UsageError('level set needs USER_ID LEVEL');
  const level =
    LEVEL_NAMES[rawLevel.toLowerCase()] ?? (/^\d+$/.test(rawLevel) ? Number(rawLevel) : Number.NaN);
  if (!isLevel(level))
    throw new UsageError(`LEVEL must be 0, 1, 5, 10 or guest, user, moderator, admin; got ${rawLevel}`);
  if (through.relayUrl !== undefined)
    return levelSetThroughRelay(userId, level, through.relayUrl, through.key, io);
  if (through.key !== undefined && io.env.SCOPESYNC_ADMIN_KEY !== through.key)
    throw new UsageError('--key goes with --relay-url');
  const found = await withStore(target, false, (store) => store.setUserLevel(userId, level));
  if (!found) {
    io.err(`scopesync-relay: no user ${userId} in ${describeTarget(target)}`);
    return 1;
  }
  // Running relays hear it at once through Redis; without it, PostgreSQL relays re-check open
  // sockets against the database within their revalidation period, and a SQLite relay's open
  // sockets keep the old level until they reconnect.
  if (redis !== undefined) await announce(redis, { type: 'level-changed', userId, level });
  const sockets =
    redis !== undefined
      ? 'running relays were told through Redis and apply it to open WebSockets at once'
      : 'databaseUrl' in target
        ? 'running relays apply it to open WebSockets within their revalidation period (30 s); add --redis-url to tell them at once'
        : 'open WebSockets keep the old level until they reconnect; use --relay-url to apply it at once';
  io.out(`${userId} is now level ${level} (${sockets})`);
  return 0;
}

/** `level set --relay-url`: the running relay changes the level itself (PUT /users/<id>/level). */
async function levelSetThroughRelay(
  userId: string,
  level: Level,
  relayUrl: string,
  key: string | undefined,
  io: CliIo,
): Promise<number> {
  if (key === undefined)
    throw new UsageError('--relay-url needs an admin key: --key KEY or SCOPESYNC_ADMIN_KEY');
  let url: URL;
  try {
    url = new URL(
      `users/${encodeURIComponent(userId)}/level`,
      relayUrl.endsWith('/') ? relayUrl : `${relayUrl}/`,
    );
  } catch {
    throw new UsageError(`--relay-url must be an http:// or https:// URL, got ${JSON.stringify(relayUrl)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`--relay-url must be an http:// or https:// URL, got ${JSON.stringify(relayUrl)}`);
  const response = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'x-api-key': key },
    body: JSON.stringify({ level }),
  });
  if (response.status === 204) {
    io.out(
      `${userId} is now level ${level} (applied by the relay at ${url.origin}, open WebSockets included)`,
    );
    return 0;
  }
  const text = await response.text();
  let message = text.slice(0, 300);
  try {
    message = String((JSON.parse(text) as { message?: unknown }).message ?? message);
  } catch {
    // Not our error format (a proxy's page): show the start of it.
  }
  io.err(`scopesync-relay: the relay at ${url.origin} answered ${response.status}: ${message}`);
  return 1;
}

/** Tells the running relays about an account change, through the same channel they use. */
async function announce(
  redis: { readonly url: string; readonly prefix: string; readonly leaseMs: number },
  event: RelayEvent & { type: 'level-changed' },
): Promise<void> {
  if (!Number.isInteger(redis.leaseMs) || redis.leaseMs < 100 || redis.leaseMs > 60_000)
    throw new UsageError('--cluster-lease-ms must be a whole number 100–60000');
  const transport = await RedisTransport.connect({ url: redis.url, prefix: redis.prefix, relayId: 'cli' });
  try {
    await transport.send(encodeClusterEvent(transport.relayId, event));
    // Done only once every relay enforces it: a relay that has not heard of it by now has had no
    // heartbeat echo since, so it asks the store before delivering (docs/scale-out.md).
    await new Promise((resolve) => setTimeout(resolve, redis.leaseMs));
  } finally {
    await transport.close();
  }
}

function describeTarget(target: StoreTarget): string {
  return 'databaseUrl' in target ? `PostgreSQL ${redactUrl(target.databaseUrl)}` : target.dataDir;
}

/** Where the audit key and anchor live. */
interface AuditFiles {
  readonly keyFile: string;
  readonly anchorFile: string;
}

function withAudit(files: AuditFiles | undefined): Pick<RelayOptions, 'audit'> {
  return files === undefined ? {} : { audit: files };
}

/**
 * Where the audit key and anchor are: the files if given, else in the audit dir, else in the
 * SQLite data dir. Undefined for a PostgreSQL relay given none of them: there is no directory
 * of its own to put them in, and relays sharing a database must share the key.
 */
function auditFilesOf(
  auditDir: string | undefined,
  keyFile: string | undefined,
  anchorFile: string | undefined,
  dataDir: string | undefined,
): AuditFiles | undefined {
  const base = auditDir ?? (keyFile === undefined ? dataDir : dirname(keyFile));
  if (base === undefined) return undefined;
  const dir = resolve(base);
  return {
    keyFile: resolve(keyFile ?? join(dir, AUDIT_KEY_FILE)),
    anchorFile: resolve(anchorFile ?? join(dir, AUDIT_ANCHOR_FILE)),
  };
}

/** The audit files of a command other than `start`, from its flags or their variables. */
function auditFiles(values: Values, env: CliIo['env'], dataDir: string | undefined): AuditFiles | undefined {
  const get = (flag: string, variable: string): string | undefined =>
    ((values as Readonly<Record<string, unknown>>)[flag] as string | undefined) ??
    (env[variable] || undefined);
  return auditFilesOf(
    get('audit-dir', 'SCOPESYNC_AUDIT_DIR'),
    get('audit-key-file', 'SCOPESYNC_AUDIT_KEY_FILE'),
    get('audit-anchor-file', 'SCOPESYNC_AUDIT_ANCHOR_FILE'),
    dataDir,
  );
}

async function auditVerify(target: StoreTarget, files: AuditFiles | undefined, io: CliIo): Promise<number> {
  const key = files === undefined ? null : readAuditKey(files.keyFile);
  const anchor = files === undefined || key === null ? null : readAuditAnchor(files.anchorFile, key);
  if (files !== undefined && key !== null && anchor === null) {
    // The relay writes the anchor when it first starts with its key: its absence is a loss or a deletion.
    io.err(
      `audit anchor missing: ${files.anchorFile} (the relay writes it at start; restore it from a backup)`,
    );
    return 1;
  }
  const result = await withStore(target, false, (store) =>
    verifyAuditChain(store, { key: key ?? undefined, anchor }),
  );
  if (result.ok) {
    const notes: string[] = [];
    if (key === null) {
      const where = files === undefined ? 'no --audit-dir given' : `no audit key at ${files.keyFile}`;
      notes.push(`unkeyed: ${where}, so a recomputed or truncated log passes`);
    } else if (result.unkeyedThrough > 0) notes.push(`unkeyed up to seq ${result.unkeyedThrough}`);
    if (anchor !== null)
      notes.push(`anchored at seq ${anchor.seq}, ${new Date(anchor.writtenAt).toISOString()}`);
    io.out(`ok ${result.entries} entries${notes.length ? ` (${notes.join('; ')})` : ''}`);
    return 0;
  }
  io.err(`audit chain broken at entry ${result.seq}${result.id ? ` (${result.id})` : ''}: ${result.problem}`);
  return 1;
}
