import { SCOPES } from '@scopesync/core';
import {
  DEFAULT_LEASE_MS,
  DEFAULT_RATE_LIMIT,
  DEFAULT_SQLITE_CACHE_KIB,
  DEFAULT_SYNC_LIMITS,
  RELAY_LOG_LEVELS,
  trustedProxyProblem,
} from '@scopesync/relay';

/** A setting of `scopesync-relay start`: one flag, one environment variable, one default. */
export interface Setting {
  /** The flag without its dashes: `port` for `--port`. */
  readonly flag: string;
  readonly env: string;
  /** What `--help` and docs/relay.md show as the default. */
  readonly shownDefault: string;
  /** The value when neither the flag nor the variable is given; undefined = unset. */
  readonly defaultValue: string | undefined;
  /** The placeholder in `--help` (`N`, `DIR`, `on|off`); '' for a switch, a flag without a value. */
  readonly placeholder: string;
  readonly meaning: string;
  /** Checks a raw value; returns an error phrase ("must be …") or null. */
  readonly check: (raw: string) => string | null;
}

/**
 * The log levels `--log-level` accepts, least to most severe: `info` (one line per HTTP request
 * and per socket opened and closed), `notice` (access denials), `warn`, `error`.
 */
export const LOG_LEVELS = RELAY_LOG_LEVELS;
/** A log level of `--log-level`. */
export type LogLevel = (typeof LOG_LEVELS)[number];

const MIB = 1024 * 1024;

function integer(min: number, max = Number.MAX_SAFE_INTEGER): (raw: string) => string | null {
  return (raw) =>
    /^\d{1,16}$/.test(raw) && Number(raw) >= min && Number(raw) <= max
      ? null
      : max === Number.MAX_SAFE_INTEGER
        ? `must be a whole number ≥ ${min}`
        : `must be a whole number ${min}–${max}`;
}

function oneOf(...choices: readonly string[]): (raw: string) => string | null {
  const listed = choices.length === 2 ? choices.join(' or ') : `one of ${choices.join(', ')}`;
  return (raw) => (choices.includes(raw) ? null : `must be ${listed}`);
}

/** What the variable of a switch may say; the flag alone means on. */
const SWITCH_VALUES = ['on', 'off', '1', '0', 'true', 'false'];

/** True when a switch's resolved value turns it on. */
export function isOn(value: string | undefined): boolean {
  return value === 'on' || value === '1' || value === 'true';
}

const nonEmpty = (raw: string): string | null => (raw === '' ? 'must not be empty' : null);

function urlWith(...protocols: readonly string[]): (raw: string) => string | null {
  return (raw) => {
    try {
      return protocols.includes(new URL(raw).protocol) ? null : `must be a ${protocols.join(' or ')}// URL`;
    } catch {
      return `must be a ${protocols.join(' or ')}// URL`;
    }
  };
}

/** A comma-separated list whose items each pass `item`. */
function listOf(item: (raw: string) => string | null): (raw: string) => string | null {
  return (raw) => {
    const items = raw.split(',').map((part) => part.trim());
    if (items.some((part) => part === '')) return 'must be a comma-separated list without empty items';
    for (const part of items) {
      const problem = item(part);
      if (problem !== null) return problem;
    }
    return null;
  };
}

/** `*` or an origin as browsers send it: scheme://host[:port], nothing after. */
function origin(raw: string): string | null {
  if (raw === '*') return null;
  try {
    return new URL(raw).origin === raw ? null : `must list origins like https://app.example (got ${raw})`;
  } catch {
    return `must list origins like https://app.example (got ${raw})`;
  }
}

/** `SCOPE=N` for a scope (or `blob`) and a whole number ≥ 1. */
function scopeBound(raw: string): string | null {
  const [scope = '', bytes = ''] = raw.split('=');
  if (!(SCOPES as readonly string[]).includes(scope) && scope !== 'blob')
    return `must list SCOPE=N with a scope of ${[...SCOPES, 'blob'].join(', ')} (got ${raw})`;
  return integer(1)(bytes) === null ? null : `must list SCOPE=N with N a whole number ≥ 1 (got ${raw})`;
}

/** The items of a comma-separated list setting (see {@link listOf}). */
export function listItems(raw: string | undefined): string[] {
  return raw === undefined ? [] : raw.split(',').map((part) => part.trim());
}

const postgresUrl = urlWith('postgres:', 'postgresql:');
const redisUrl = urlWith('redis:', 'rediss:');

function setting(
  flag: string,
  env: string,
  placeholder: string,
  defaultValue: string | number | undefined,
  meaning: string,
  check: (raw: string) => string | null,
  shownDefault = defaultValue === undefined ? '—' : String(defaultValue),
): Setting {
  const value = defaultValue === undefined ? undefined : String(defaultValue);
  return { flag, env, placeholder, defaultValue: value, shownDefault, meaning, check };
}

const limit = DEFAULT_SYNC_LIMITS;

/**
 * Every setting of `scopesync-relay start`, in `--help` order. A flag wins over its variable,
 * the variable over the default. PORT, HOST, DATA_DIR and STATIC_DIR keep the short names
 * platforms and the README use; the rest carry the SCOPESYNC_ prefix so that a generic name in
 * someone's environment is not taken for a relay setting.
 */
export const SETTINGS: readonly Setting[] = [
  setting('port', 'PORT', 'N', 8787, 'TCP port; 0 picks a free one', integer(0, 65535)),
  setting(
    'host',
    'HOST',
    'HOST',
    '127.0.0.1',
    'interface to listen on; 0.0.0.0 (or ::) serves other machines',
    nonEmpty,
  ),
  setting(
    'data-dir',
    'DATA_DIR',
    'DIR',
    './data',
    'directory of relay.sqlite and docs.sqlite, created if missing',
    nonEmpty,
  ),
  setting(
    'relay-db-cache-kib',
    'SCOPESYNC_RELAY_DB_CACHE_KIB',
    'KIB',
    DEFAULT_SQLITE_CACHE_KIB.relay,
    'SQLite page cache of relay.sqlite (users, keys, metadata) in KiB, read on every WebSocket upgrade: more keeps more users’ rows in memory, less reads them from the OS file cache',
    integer(16),
  ),
  setting(
    'docs-db-cache-kib',
    'SCOPESYNC_DOCS_DB_CACHE_KIB',
    'KIB',
    DEFAULT_SQLITE_CACHE_KIB.docs,
    'SQLite page cache of docs.sqlite (document logs) in KiB',
    integer(16),
  ),
  setting(
    'database-url',
    'DATABASE_URL',
    'URL',
    undefined,
    'postgres://… — keep everything in PostgreSQL instead of --data-dir, so several relays can share it',
    postgresUrl,
  ),
  setting(
    'database-schema',
    'SCOPESYNC_DATABASE_SCHEMA',
    'NAME',
    'scopesync',
    'the PostgreSQL schema of the relay tables (created and migrated at start)',
    (raw) => (/^[a-z_][a-z0-9_]{0,62}$/.test(raw) ? null : 'must be a lowercase SQL identifier'),
  ),
  setting(
    'redis-url',
    'REDIS_URL',
    'URL',
    undefined,
    'redis://… — live updates, presence and access changes between relays (with --database-url)',
    redisUrl,
  ),
  setting(
    'redis-prefix',
    'SCOPESYNC_REDIS_PREFIX',
    'NAME',
    'scopesync',
    'prefix of the Redis channel and keys, so deployments can share a Redis',
    (raw) => (/^[A-Za-z0-9_.:-]{1,64}$/.test(raw) ? null : 'must be 1–64 of A-Z a-z 0-9 _ . : -'),
  ),
  setting(
    'cluster-lease-ms',
    'SCOPESYNC_CLUSTER_LEASE_MS',
    'MS',
    DEFAULT_LEASE_MS,
    'with --redis-url: how long a relay trusts its access decisions after its last heartbeat echo, and how long one that narrowed access waits before answering (docs/scale-out.md); the same on every relay',
    integer(100, 60_000),
  ),
  setting(
    'audit-dir',
    'SCOPESYNC_AUDIT_DIR',
    'DIR',
    undefined,
    'directory of the audit key (audit.key, created 0600) and anchor (audit-anchor.json); keep it out of the database’s reach',
    nonEmpty,
    'the data dir; none with --database-url (unkeyed)',
  ),
  setting(
    'audit-key-file',
    'SCOPESYNC_AUDIT_KEY_FILE',
    'FILE',
    undefined,
    'the audit key: HMAC of every audit entry; all relays on one database share it',
    nonEmpty,
    '<audit dir>/audit.key',
  ),
  setting(
    'audit-anchor-file',
    'SCOPESYNC_AUDIT_ANCHOR_FILE',
    'FILE',
    undefined,
    'the audit anchor: the log’s head, HMACed, written every 10 s and at shutdown; audit verify checks it',
    nonEmpty,
    '<audit dir>/audit-anchor.json',
  ),
  setting(
    'static-dir',
    'STATIC_DIR',
    'DIR',
    undefined,
    'a built web app served at / (SPA fallback); never a directory holding --data-dir',
    nonEmpty,
  ),
  setting(
    'demo',
    'SCOPESYNC_DEMO',
    '',
    'off',
    'serve the demo web app (apps/web/dist, when built) at / unless --static-dir is given; npm start sets it',
    oneOf(...SWITCH_VALUES),
  ),
  setting(
    'no-static',
    'SCOPESYNC_NO_STATIC',
    '',
    'off',
    'serve no files at /, whatever --static-dir, STATIC_DIR or --demo say',
    oneOf(...SWITCH_VALUES),
  ),
  setting(
    'cors-origins',
    'SCOPESYNC_CORS_ORIGINS',
    'LIST',
    '*',
    'comma-separated origins browsers may call the API from; * = any (keys travel in headers, not cookies)',
    listOf(origin),
  ),
  setting(
    'trusted-proxies',
    'SCOPESYNC_TRUSTED_PROXIES',
    'LIST',
    undefined,
    'comma-separated addresses or CIDR ranges of reverse proxies whose Forwarded / X-Forwarded-For name the client',
    listOf(trustedProxyProblem),
  ),
  setting(
    'registration',
    'SCOPESYNC_REGISTRATION',
    'open|closed',
    'open',
    'closed: POST /keys refuses new users (403); keys for existing users come from issue-key or an admin (docs/auth.md)',
    oneOf('open', 'closed'),
  ),
  setting(
    'jwt-issuer',
    'SCOPESYNC_JWT_ISSUER',
    'LIST',
    undefined,
    'accept JWTs from the app’s auth server: the iss they must carry (comma-separated); needs --jwt-audience and one key (docs/auth.md)',
    listOf(nonEmpty),
  ),
  setting(
    'jwt-audience',
    'SCOPESYNC_JWT_AUDIENCE',
    'LIST',
    undefined,
    'the aud the app’s tokens must carry (comma-separated)',
    listOf(nonEmpty),
  ),
  setting(
    'jwt-secret-file',
    'SCOPESYNC_JWT_SECRET_FILE',
    'FILE',
    undefined,
    'file holding the shared secret the app signs tokens with (HS256; at least 32 bytes; surrounding whitespace ignored)',
    nonEmpty,
  ),
  setting(
    'jwt-public-key-file',
    'SCOPESYNC_JWT_PUBLIC_KEY_FILE',
    'FILE',
    undefined,
    'file holding the public key that verifies the app’s tokens: PEM (BEGIN PUBLIC KEY) or a JWK (RS*, PS*, ES*, EdDSA)',
    nonEmpty,
  ),
  setting(
    'jwt-jwks-file',
    'SCOPESYNC_JWT_JWKS_FILE',
    'FILE',
    undefined,
    'file holding the app’s JSON Web Key Set ({"keys": […]}); tokens pick their key by kid',
    nonEmpty,
  ),
  setting(
    'jwt-subject-claim',
    'SCOPESYNC_JWT_SUBJECT_CLAIM',
    'NAME',
    'sub',
    'the claim naming the app’s user; the relay user id is derived from it and the issuer',
    nonEmpty,
  ),
  setting(
    'jwt-level-claim',
    'SCOPESYNC_JWT_LEVEL_CLAIM',
    'NAME',
    'level',
    'a numeric claim giving the user’s level (1, 5, 10), capped by --jwt-max-level',
    nonEmpty,
  ),
  setting(
    'jwt-roles-claim',
    'SCOPESYNC_JWT_ROLES_CLAIM',
    'NAME',
    'roles',
    'a claim holding a role or a list of roles, mapped by --jwt-roles',
    nonEmpty,
  ),
  setting(
    'jwt-roles',
    'SCOPESYNC_JWT_ROLES',
    'LIST',
    undefined,
    'role=level pairs, e.g. editor=1,moderator=5: the highest matching role gives the level',
    listOf((raw) =>
      /^[^=\s]+=(1|5|10)$/.test(raw) ? null : `must list role=level with level 1, 5 or 10 (got ${raw})`,
    ),
  ),
  setting(
    'jwt-max-level',
    'SCOPESYNC_JWT_MAX_LEVEL',
    'LEVEL',
    1,
    'the highest level a token can give: 1 user, 5 moderator, 10 admin',
    oneOf('1', '5', '10'),
  ),
  setting(
    'metrics-token',
    'SCOPESYNC_METRICS_TOKEN',
    'TOKEN',
    undefined,
    'GET /metrics answers only Authorization: Bearer TOKEN',
    (raw) =>
      /^[\x21-\x7e]{16,}$/.test(raw) ? null : 'must be at least 16 printable characters without spaces',
  ),
  setting(
    'metrics-port',
    'SCOPESYNC_METRICS_PORT',
    'N',
    undefined,
    'serve /metrics on this port only (not on --port); 0 picks a free one',
    integer(0, 65535),
  ),
  setting(
    'metrics-host',
    'SCOPESYNC_METRICS_HOST',
    'HOST',
    '127.0.0.1',
    'interface of the --metrics-port listener',
    nonEmpty,
  ),
  setting(
    'request-timeout-ms',
    'SCOPESYNC_REQUEST_TIMEOUT_MS',
    'MS',
    30_000,
    'time a client has to send a whole HTTP request (headers and body); then 408',
    integer(100),
  ),
  setting(
    'example-mod',
    'SCOPESYNC_EXAMPLE_MOD',
    '',
    'off',
    'run the example guestbook mod',
    oneOf(...SWITCH_VALUES),
  ),
  setting(
    'max-body-bytes',
    'SCOPESYNC_MAX_BODY_BYTES',
    'N',
    16 * MIB,
    'largest HTTP request body; larger ones answer 413',
    integer(1),
  ),
  setting(
    'max-frame-bytes',
    'SCOPESYNC_MAX_FRAME_BYTES',
    'N',
    limit.maxFrameBytes,
    'largest WebSocket frame; larger ones close the socket with 1009',
    integer(1),
  ),
  setting(
    'max-docs-per-connection',
    'SCOPESYNC_MAX_DOCS_PER_CONNECTION',
    'N',
    limit.maxDocsPerConnection,
    'documents one multiplexed socket may subscribe to at once',
    integer(1),
  ),
  setting(
    'max-string-bytes',
    'SCOPESYNC_MAX_STRING_BYTES',
    'N',
    limit.maxStringBytes,
    'longest string (document name, reason) in a frame, in UTF-8 bytes',
    integer(1),
  ),
  setting(
    'max-entries-per-page',
    'SCOPESYNC_MAX_ENTRIES_PER_PAGE',
    'N',
    limit.maxEntriesPerPage,
    'most entries in one enc-entries frame',
    integer(1),
  ),
  setting(
    'max-page-bytes',
    'SCOPESYNC_MAX_PAGE_BYTES',
    'N',
    limit.maxPageBytes,
    'envelope bytes in one enc-entries frame',
    integer(1),
  ),
  setting(
    'max-pending-frames',
    'SCOPESYNC_MAX_PENDING_FRAMES',
    'N',
    limit.maxPendingFrames,
    'frames of one socket waiting to be processed before it is closed with 4429',
    integer(1),
  ),
  setting(
    'max-buffered-bytes',
    'SCOPESYNC_MAX_BUFFERED_BYTES',
    'N',
    limit.maxBufferedBytes,
    'bytes queued for a socket that does not read before it is closed with 4503',
    integer(1),
  ),
  setting(
    'max-awareness-clients',
    'SCOPESYNC_MAX_AWARENESS_CLIENTS',
    'N',
    limit.maxAwarenessClients,
    'awareness client ids one subscription may claim',
    integer(1),
  ),
  setting(
    'max-awareness-bytes',
    'SCOPESYNC_MAX_AWARENESS_BYTES',
    'N',
    limit.maxAwarenessBytes,
    'awareness bytes one socket may hold over all its documents; over it, 4413',
    integer(1),
  ),
  setting(
    'max-frames-per-second',
    'SCOPESYNC_MAX_FRAMES_PER_SECOND',
    'N',
    limit.maxFramesPerSecond,
    'sustained frames per second one socket may send (burst twice that); over it, 4429',
    integer(1),
  ),
  setting(
    'max-caller-frames-per-second',
    'SCOPESYNC_MAX_CALLER_FRAMES_PER_SECOND',
    'N',
    limit.maxCallerFramesPerSecond,
    'the same over all sockets of one user (or one guest address)',
    integer(1),
  ),
  setting(
    'max-sockets-per-caller',
    'SCOPESYNC_MAX_SOCKETS_PER_CALLER',
    'N',
    limit.maxSocketsPerCaller,
    'open sockets per user (or guest address); one more is refused with HTTP 429',
    integer(1),
  ),
  setting(
    'max-total-buffered-bytes',
    'SCOPESYNC_MAX_TOTAL_BUFFERED_BYTES',
    'N',
    limit.maxTotalBufferedBytes,
    'bytes queued for all sockets together; past it, sockets with unsent data are closed with 4503',
    integer(1),
  ),
  setting(
    'rate-limit',
    'SCOPESYNC_RATE_LIMIT',
    'on|off',
    'on',
    'per-caller token bucket for HTTP requests (per API key, per address for guests)',
    oneOf('on', 'off'),
  ),
  setting(
    'rate-limit-burst',
    'SCOPESYNC_RATE_LIMIT_BURST',
    'N',
    DEFAULT_RATE_LIMIT.capacity,
    'requests a caller may send at once',
    integer(1),
  ),
  setting(
    'rate-limit-per-second',
    'SCOPESYNC_RATE_LIMIT_PER_SECOND',
    'N',
    DEFAULT_RATE_LIMIT.refillPerSecond,
    'sustained requests per second per caller; over it, 429 with Retry-After',
    integer(1),
  ),
  setting(
    'rate-limit-callers',
    'SCOPESYNC_RATE_LIMIT_CALLERS',
    'N',
    DEFAULT_RATE_LIMIT.maxBuckets,
    'callers tracked at most; the least recent are forgotten (and start with a full bucket)',
    integer(1),
  ),
  setting(
    'max-doc-bytes',
    'SCOPESYNC_MAX_DOC_BYTES',
    'N',
    64 * MIB,
    'largest a document may grow (bytes of its Yjs state); a write past it is refused with TooLarge',
    integer(1),
  ),
  setting(
    'max-doc-bytes-by-scope',
    'SCOPESYNC_MAX_DOC_BYTES_BY_SCOPE',
    'LIST',
    undefined,
    'per-scope bounds over --max-doc-bytes, e.g. PUBLIC_RW=1048576,blob=4194304',
    listOf(scopeBound),
  ),
  setting(
    'doc-idle-ms',
    'SCOPESYNC_DOC_IDLE_MS',
    'MS',
    30_000,
    'how long a document nobody uses stays in memory',
    integer(0),
  ),
  setting(
    'compact-after',
    'SCOPESYNC_COMPACT_AFTER',
    'N',
    500,
    'stored updates of a document before the relay compacts them into one',
    integer(2),
  ),
  setting(
    'ping-interval-ms',
    'SCOPESYNC_PING_INTERVAL_MS',
    'MS',
    30_000,
    'how often sync sockets are pinged; one that missed the previous pong (half-open) is dropped',
    integer(100),
  ),
  setting(
    'close-grace-ms',
    'SCOPESYNC_CLOSE_GRACE_MS',
    'MS',
    5000,
    'on SIGTERM, how long HTTP requests in flight may finish before they are cut',
    integer(0),
  ),
  setting(
    'log-level',
    'SCOPESYNC_LOG_LEVEL',
    'LEVEL',
    'warn',
    'least severe log line written to stderr (JSON lines): info (requests, sockets), notice (access denials), warn or error',
    oneOf(...LOG_LEVELS),
  ),
];

/** A setting given an invalid value, a missing value or an unknown name: exit code 2. */
export class SettingError extends Error {}

/** The resolved settings of `start`, by flag name; unset optional settings are absent. */
export type ResolvedSettings = ReadonlyMap<string, string>;

/**
 * Resolves every setting: the flag if given, else the environment variable if set (an empty
 * variable counts as unset), else the default. Throws {@link SettingError} naming the flag or
 * the variable whose value is invalid.
 */
export function resolveSettings(
  flags: Readonly<Record<string, string | undefined>>,
  env: Readonly<Record<string, string | undefined>>,
): ResolvedSettings {
  const resolved = new Map<string, string>();
  for (const s of SETTINGS) {
    const fromFlag = flags[s.flag];
    const fromEnv = env[s.env] === '' ? undefined : env[s.env];
    const [source, raw] =
      fromFlag !== undefined
        ? [`--${s.flag}`, fromFlag]
        : fromEnv !== undefined
          ? [s.env, fromEnv]
          : [null, s.defaultValue];
    if (raw === undefined) continue;
    const problem = source === null ? null : s.check(raw);
    if (problem !== null) throw new SettingError(`${source} ${problem}, got ${JSON.stringify(raw)}`);
    resolved.set(s.flag, raw);
  }
  return resolved;
}

/** The settings block of `--help`: each flag with its variable and default, then its meaning. */
export function settingsHelp(): string {
  return SETTINGS.map(
    (s) =>
      `    --${s.flag}${s.placeholder ? ` ${s.placeholder}` : ''}  (${s.env}${s.placeholder ? '' : '=1'}, default ${s.shownDefault})\n        ${s.meaning}`,
  ).join('\n');
}
