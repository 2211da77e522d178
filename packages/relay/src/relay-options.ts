/**
 * What a relay can be told ({@link RelayOptions} and its parts), the defaults of what it is not
 * told, and the options read into what the parts take.
 */

import {
  type DocName,
  type DocStore,
  type Locks,
  parseDocName,
  type RelayStore,
  type Scope,
} from '@scopesync/core';
import type { JwtAuthOptions, VerifiedToken } from './auth/jwt-verifier.ts';
import type { ChallengeStore } from './challenge-store.ts';
import type { ClusterTransport } from './cluster/cluster-transport.ts';
import type { RateLimitBuckets, RateLimitOptions } from './rate-limiter.ts';
import type { RelayLog } from './relay-log.ts';
import type { ModDefinition } from './runtime.ts';
import type { SyncServerOptions } from './sync/sync-server.ts';

/** Size limits of the relay. */
export interface RelayLimits {
  /** Largest HTTP request body, in bytes; larger ones get 413 before they are read. Default 16 MiB. */
  readonly maxBodyBytes?: number;
  /** The WebSocket layer's limits (frame size, subscriptions per socket, …), passed to the SyncServer. */
  readonly sync?: SyncServerOptions['limits'];
}

/** Explicit stores, instead of a data dir. The relay does not close stores it was given. */
export interface RelayStores {
  readonly relayStore: RelayStore;
  readonly docStore: DocStore;
}

/**
 * What several relays share besides their stores. Each part defaults to this process's own,
 * which is right for one relay and wrong for several: give all three when relays share a database.
 */
export interface RelayCluster {
  /**
   * Events between relays (e.g. `RedisTransport`). Without one, relays still converge: each
   * compares the documents its sockets hold with the store every few seconds.
   */
  readonly transport?: ClusterTransport | undefined;
  /** Locks every relay honours (e.g. PostgreSQL advisory locks); default: in process. */
  readonly locks?: Locks | undefined;
  /** Registration challenges any relay can redeem; default: in memory. */
  readonly challenges?: ChallengeStore | undefined;
  /**
   * The relay id registration proofs name (`POST /keys/challenge` publishes it). Relays that
   * share `challenges` must share it; default: random per process with in-memory challenges,
   * `scopesync-cluster` with shared ones (give one per deployment, so a proof made for one
   * deployment is refused by another that shares nothing with it).
   */
  readonly relayId?: string | undefined;
  /**
   * How often every open socket is checked against the stores, in case an access event between
   * relays was lost (it is also done after the transport reconnects). Default 30 s.
   */
  readonly revalidateMs?: number | undefined;
  /**
   * L, the delivery lease (docs/scale-out.md, "Revocations between relays"), in ms: how long a
   * relay trusts its access decisions in memory after its last heartbeat echo, and how long a
   * relay that narrowed access waits after Redis took the event before it answers. The same on
   * every relay of a deployment. Default 1000. Needs a transport with `onEcho` (RedisTransport).
   */
  readonly leaseMs?: number | undefined;
  /** How often each relay publishes its heartbeat, in ms; at most half of `leaseMs`. Default 200 (or `leaseMs` / 5 if less). */
  readonly heartbeatMs?: number | undefined;
}

/** Options of {@link createRelay}; everything has a default. */
export interface RelayOptions {
  /** TCP port; 0 picks a free one. Default 8787. */
  readonly port?: number;
  /** Interface to listen on. Default `127.0.0.1`; `0.0.0.0` to serve a network. */
  readonly host?: string;
  /**
   * Directory of the SQLite files (`relay.sqlite` for users, keys, metadata, shares, audit;
   * `docs.sqlite` for document logs), created if missing. Without it and without `stores`
   * the relay keeps everything in memory.
   */
  readonly dataDir?: string;
  /**
   * With `dataDir`: the SQLite page cache of each file, in KiB (at least 16). Pages read stay
   * there up to this size while the relay runs; smaller holds less memory and reads pages
   * from the operating system's file cache more often. Default {@link DEFAULT_SQLITE_CACHE_KIB}.
   */
  readonly sqliteCacheKiB?:
    | { readonly relay?: number | undefined; readonly docs?: number | undefined }
    | undefined;
  /** Stores to use instead of a data dir (e.g. memory stores in tests). */
  readonly stores?: RelayStores;
  readonly limits?: RelayLimits;
  /**
   * Per-caller token buckets for HTTP requests: options of in-memory ones, shared buckets (e.g.
   * {@link RedisRateLimitBuckets} for several relays), or false for none. Default: generous
   * in-memory buckets (see DEFAULT_RATE_LIMIT).
   */
  readonly rateLimit?: Partial<RateLimitOptions> | RateLimitBuckets | false;
  /** Several relays on one database: how they share events, locks and challenges. */
  readonly cluster?: RelayCluster | undefined;
  /** Mods to register (with their grants) and start when the relay listens. */
  readonly mods?: readonly ModDefinition[];
  /**
   * A built web app to serve at `/` (SPA fallback to index.html). Default: none. An empty path
   * and a directory that equals or contains `dataDir` are refused (BadRequest): the relay never
   * serves its working directory or its own data.
   */
  readonly staticDir?: string;
  /**
   * Origins browsers may call the HTTP API from. Default: any (`*`) — API keys travel in
   * headers, never cookies, so another origin's page has no ambient credential to use.
   */
  readonly corsOrigins?: readonly string[] | undefined;
  /**
   * Reverse proxies (addresses, CIDR ranges) whose `Forwarded` / `X-Forwarded-For` name the
   * client for per-address rate limits and caps. Default: none (the TCP peer is the client).
   */
  readonly trustedProxies?: readonly string[] | undefined;
  /**
   * GET /metrics: `token` requires `Authorization: Bearer <token>`; `port` (and `host`, default
   * 127.0.0.1) moves it to a listener of its own, and the main port no longer answers it.
   */
  readonly metricsEndpoint?:
    | {
        readonly token?: string | undefined;
        readonly port?: number | undefined;
        readonly host?: string | undefined;
      }
    | undefined;
  /** How long a client may take to send a whole HTTP request (headers and body), in ms. Default 30000. */
  readonly requestTimeoutMs?: number | undefined;
  /**
   * How documents stay in memory, and how large a plaintext document may grow (bytes of its
   * encoded state): `maxBytes` for every scope (default 64 MiB), `maxBytesByScope` per scope
   * (`{ PUBLIC_RW: 1048576 }`, `blob` for blobs). A write past it is refused with TooLarge.
   */
  readonly docs?: {
    readonly idleMs?: number;
    readonly compactAfter?: number;
    /** How long a commit may wait for the store before its writers get Unavailable and resend, in ms. Default 20000. */
    readonly commitTimeoutMs?: number | undefined;
    readonly maxBytes?: number | undefined;
    readonly maxBytesByScope?: Readonly<Partial<Record<Scope | 'blob', number>>> | undefined;
  };
  /** How long close() lets HTTP requests in flight finish before cutting them, in ms. Default 5000. */
  readonly closeGraceMs?: number;
  /**
   * How often sync sockets are pinged, in ms; a socket from which nothing was read since the
   * previous ping (not even its pong) is dropped, so a half-open connection is found within
   * about twice this. Default 30000.
   */
  readonly pingIntervalMs?: number | undefined;
  /** Where the relay reports problems. Default: warnings and errors as JSON lines on stderr. */
  readonly log?: RelayLog;
  /**
   * The audit chain's key and its anchor outside the database (docs/security.md, "Audit
   * chain"). The key file is created (mode 0600) when missing; several relays on one database
   * must share it. Default with a data dir: `audit.key` and `audit-anchor.json` in it; the
   * anchor defaults to the key's directory. Without either, the chain is unkeyed and unanchored.
   */
  readonly audit?: RelayAuditOptions;
  /** Who may sign in and how (docs/auth.md): the app's tokens, and whether anyone may register. */
  readonly auth?: RelayAuthOptions | undefined;
}

/** How callers authenticate besides the API keys the relay issues (docs/auth.md). */
export interface RelayAuthOptions {
  /**
   * Accept JWTs minted by the app's own auth server (key, issuer, audience, claims map). Their
   * users are created on first use; an invalid or expired token is 401, and a socket whose token
   * expires while open is closed with 4401.
   */
  readonly jwt?: JwtAuthOptions | undefined;
  /**
   * Instead of `jwt`: the app's own check of a token (an opaque session id, a token of another
   * format), like Hocuspocus's `onAuthenticate`. It answers `{ userId, level, expiresAt }` (see
   * `userIdForSubject`; `level: null` leaves the stored level alone) or throws to refuse. Tokens of
   * an API key's shape (43 base64url characters) are taken for API keys, not passed to it.
   */
  readonly verifyToken?: ((token: string) => Promise<VerifiedToken>) | undefined;
  /**
   * `open` (default): `POST /keys` registers new users. `closed`: it refuses them (403); a device
   * proving the signing key of an existing user still joins that user, and keys for existing users
   * come from `runtime.issueKey`, `POST /users/<id>/api-keys` (admins) or the CLI.
   */
  readonly registration?: 'open' | 'closed' | undefined;
}

/** Where the audit key and anchor live, and how often the anchor moves. */
export interface RelayAuditOptions {
  readonly keyFile?: string | undefined;
  readonly anchorFile?: string | undefined;
  /** How often the audit head is anchored while running, in ms. Default 10000. */
  readonly anchorIntervalMs?: number | undefined;
}

/** The defaults of the relay's plain options (see {@link RelayOptions}). */
export const DEFAULTS = {
  port: 8787,
  host: '127.0.0.1',
  maxBodyBytes: 16 * 1024 * 1024,
  closeGraceMs: 5000,
  requestTimeoutMs: 30_000,
  maxDocBytes: 64 * 1024 * 1024,
};

/** The size bound of each document, by its scope. */
export function docSizeBounds(
  maxBytes: number | undefined,
  byScope: Readonly<Partial<Record<Scope | 'blob', number>>> = {},
): (name: DocName) => number {
  const fallback = maxBytes ?? DEFAULTS.maxDocBytes;
  return (name) => {
    const address = parseDocName(name);
    return byScope[address.kind === 'blob' ? 'blob' : address.scope] ?? fallback;
  };
}
