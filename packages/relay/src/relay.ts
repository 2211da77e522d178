import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import {
  type DocName,
  type DocStore,
  KeyedMutex,
  type Locks,
  MemoryDocStore,
  parseDocName,
  type RelayStore,
  type Scope,
  SyncError,
} from '@scopesync/core';
import { SqliteDocStore, SqliteRelayStore } from '@scopesync/store-sqlite';
import { AccessControl } from './access-control.ts';
import {
  AUDIT_ANCHOR_FILE,
  AUDIT_KEY_FILE,
  AuditAnchorKeeper,
  loadOrCreateAuditKey,
} from './audit-anchor.ts';
import { AuditLog } from './audit-log.ts';
import { type JwtAuthOptions, JwtVerifier, type VerifiedToken } from './auth/jwt-verifier.ts';
import { type AttachOptions, attachToServer } from './auth/mount.ts';
import { TokenUsers } from './auth/token-users.ts';
import type { ChallengeStore } from './challenge-store.ts';
import { clusterLeaseOf } from './cluster/cluster-lease.ts';
import { ClusterLink } from './cluster/cluster-link.ts';
import type { ClusterTransport } from './cluster/cluster-transport.ts';
import { type AccessFence, NO_FENCE } from './cluster/narrowing-fence.ts';
import { DocFeed } from './documents/doc-feed.ts';
import { DocHub } from './documents/doc-hub.ts';
import { createEnvelopeVerifier } from './envelope-policy.ts';
import type { EventBus } from './events/event-bus.ts';
import { countEvents } from './events/event-metrics.ts';
import { LocalEventBus } from './events/local-event-bus.ts';
import { ClientAddress } from './http/client-address.ts';
import { HttpApi } from './http/http-api.ts';
import { loggablePath } from './http/request-log.ts';
import { StaticFiles } from './http/static-files.ts';
import { instrumentRelayStore } from './instrumented-relay-store.ts';
import { KeyChallenges } from './key-proof.ts';
import { MemoryRelayStore } from './memory-relay-store.ts';
import { Metrics } from './metrics.ts';
import type { RateLimitBuckets, RateLimitOptions } from './rate-limiter.ts';
import { consoleRelayLog, type RelayLog } from './relay-log.ts';
import { type ModDefinition, RelayRuntime } from './runtime.ts';
import { AccountService } from './services/account-service.ts';
import { BlobService } from './services/blob-service.ts';
import { DeviceListService } from './services/device-list-service.ts';
import { ObjectService } from './services/object-service.ts';
import { ShareService } from './services/share-service.ts';
import { SyncAccess } from './services/sync-access.ts';
import type { SyncLog } from './sync/sync-log.ts';
import { SyncServer, type SyncServerOptions } from './sync/sync-server.ts';

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
   * previous ping (not even its pong) is dropped, so a half-open connection is found within about twice this. Default 30000.
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

/** The file in a data dir holding users, keys, metadata, shares, the audit log and grants. */
export const RELAY_DB_FILE = 'relay.sqlite';
/** The file in a data dir holding the document logs. */
export const DOCS_DB_FILE = 'docs.sqlite';

/**
 * The page cache of each SQLite file a relay opens in its data dir, in KiB. `relay.sqlite` is
 * read on every upgrade (the key and its user): with better-sqlite3's default of 16,000 KiB, a
 * relay that thousands of users connected to keeps all their rows' pages too; 256 KiB still
 * holds the interior b-tree pages every lookup walks, and the leaves come from the OS file
 * cache (bench/results.md, "the page cache of relay.sqlite"). `docs.sqlite` keeps the driver's
 * default.
 */
export const DEFAULT_SQLITE_CACHE_KIB = { relay: 256, docs: 16_000 } as const;

const DEFAULTS = {
  port: 8787,
  host: '127.0.0.1',
  maxBodyBytes: 16 * 1024 * 1024,
  closeGraceMs: 5000,
  requestTimeoutMs: 30_000,
  maxDocBytes: 64 * 1024 * 1024,
};

/** Where a listening relay is. */
export interface RelayAddress {
  readonly port: number;
  /** `http://host:port`, without a trailing slash. */
  readonly url: string;
}

/**
 * A running relay: the HTTP API, the WebSocket sync endpoints (`/sync`, `/sync/<name>`), the
 * server runtime and mods, over one RelayStore and one DocStore. It only assembles the parts
 * (docs/architecture.md): adapters (HTTP, sync, runtime) over one service layer, which changes
 * stores and documents and publishes domain events on the bus that sockets react to. Create it
 * with {@link createRelay}, then `listen()`; `close()` stops it.
 */
export class Relay {
  /** The authoritative server runtime API (and mods). */
  readonly runtime: RelayRuntime;
  /** The metrics registry behind GET /metrics. */
  readonly metrics: Metrics;
  /** Users, keys, metadata, shares, audit, grants. */
  readonly store: RelayStore;
  /** The access path every channel uses. */
  readonly access: AccessControl;
  /** The audit log. */
  readonly audit: AuditLog;
  /** The documents in memory. */
  readonly hub: DocHub;
  /** The domain events every change goes out on. */
  readonly bus: EventBus;
  /** The WebSocket endpoints. */
  readonly syncServer: SyncServer;
  readonly #server: Server;
  readonly #metricsServer: Server | null;
  #metricsAddress: RelayAddress | null = null;
  readonly #options: RelayOptions;
  readonly #log: RelayLog;
  readonly #ownedStores: { close(): Promise<void> }[];
  readonly #stops: (() => unknown)[] = [];
  #address: RelayAddress | null = null;
  #listening: Promise<RelayAddress> | null = null;
  #starting: Promise<void> | null = null;
  readonly #detach: (() => void)[] = [];
  readonly #api: HttpApi;
  #closing: Promise<void> | null = null;
  #leaveCluster: (() => Promise<void>) | null = null;
  /** Several relays with an echoing transport: the delivery lease and the narrowing fence. */
  readonly #lease: ReturnType<typeof clusterLeaseOf>;
  readonly #anchor: AuditAnchorKeeper | null;
  #markClosed!: () => void;
  /** Settles once `close()` has finished, whoever called it. */
  readonly whenClosed: Promise<void> = new Promise((resolve) => {
    this.#markClosed = resolve;
  });

  /** Use {@link createRelay}. */
  constructor(options: RelayOptions = {}) {
    this.#options = options;
    const staticFiles =
      options.staticDir === undefined
        ? null
        : new StaticFiles({
            root: options.staticDir,
            ...(options.dataDir === undefined ? {} : { forbidden: [options.dataDir] }),
          });
    const clientAddress = new ClientAddress(options.trustedProxies ?? []);
    this.#log = options.log ?? consoleRelayLog;
    this.metrics = new Metrics();
    const { relayStore, docStore, owned } = openStores(options);
    this.#ownedStores = owned;
    this.store = instrumentRelayStore(
      relayStore,
      this.metrics.histogram(
        'scopesync_relay_store_seconds',
        'Latency of relay store calls (users, keys, metadata, audit).',
      ),
    );
    const keyFile =
      options.audit?.keyFile ?? (options.dataDir ? join(options.dataDir, AUDIT_KEY_FILE) : undefined);
    const auditKey =
      keyFile === undefined
        ? undefined
        : loadOrCreateAuditKey(keyFile, (message) => this.#log('warn', message));
    this.audit = new AuditLog({ store: this.store, key: auditKey });
    this.#anchor =
      keyFile === undefined || auditKey === undefined
        ? null
        : new AuditAnchorKeeper({
            store: this.store,
            key: auditKey,
            file: options.audit?.anchorFile ?? join(dirname(keyFile), AUDIT_ANCHOR_FILE),
            intervalMs: options.audit?.anchorIntervalMs ?? 10_000,
            log: this.#log,
          });
    const syncLog: SyncLog = (level, message, context) => this.#log(level, message, context);
    const handlerFailures = this.metrics.counter(
      'scopesync_event_handler_failures_total',
      'Event handlers and serialized tasks on the bus that failed (each is logged as an error).',
    );
    this.bus = new LocalEventBus({
      log: (message, context) => {
        handlerFailures.inc();
        this.#log('error', message, context);
      },
    });
    countEvents(this.bus, this.metrics);
    const locks = options.cluster?.locks ?? new KeyedMutex();
    const now = Date.now;
    this.#lease = clusterLeaseOf(options.cluster, this.#log);
    const fence: AccessFence = this.#lease?.fence ?? NO_FENCE;
    const accounts = new AccountService({ store: this.store, bus: this.bus, now, fence });
    const jwt = options.auth?.jwt;
    const verifyToken = options.auth?.verifyToken;
    if (jwt !== undefined && verifyToken !== undefined)
      throw new SyncError('BadRequest', 'give auth.jwt or auth.verifyToken, not both');
    const verifier = verifyToken !== undefined ? { verify: verifyToken } : jwt && new JwtVerifier(jwt);
    this.access = new AccessControl({
      store: this.store,
      audit: this.audit,
      metrics: this.metrics,
      log: this.#log,
      tokens: verifier ? new TokenUsers({ verifier, store: this.store, accounts, now }) : undefined,
    });
    this.hub = new DocHub({
      store: docStore,
      bus: this.bus,
      metrics: this.metrics,
      log: syncLog,
      // Envelopes are checked against the users' registered signing keys (docs/encryption.md).
      verifyEnvelope: createEnvelopeVerifier({ store: this.store, mutex: locks }),
      ...(options.docs?.idleMs === undefined ? {} : { idleMs: options.docs.idleMs }),
      ...(options.docs?.compactAfter === undefined ? {} : { compactAfter: options.docs.compactAfter }),
      commitTimeoutMs: options.docs?.commitTimeoutMs,
      maxDocBytes: docSizeBounds(options.docs?.maxBytes, options.docs?.maxBytesByScope),
    });
    const services = {
      access: this.access,
      store: this.store,
      hub: this.hub,
      bus: this.bus,
      locks,
      now,
      fence,
    };
    const objects = new ObjectService(services);
    this.syncServer = new SyncServer({
      hub: this.hub,
      bus: this.bus,
      authority: new SyncAccess(this.access, objects),
      metrics: this.metrics,
      ...(options.limits?.sync === undefined ? {} : { limits: options.limits.sync }),
      clientAddress: (request) => clientAddress.of(request),
      log: syncLog,
      ...(options.pingIntervalMs === undefined ? {} : { pingIntervalMs: options.pingIntervalMs }),
      deliveryLease: this.#lease?.lease,
    });
    this.runtime = new RelayRuntime({ objects, accounts, audit: this.audit, store: this.store, now });
    if (options.cluster) this.#joinCluster(options.cluster, docStore, syncLog);
    const api = new HttpApi({
      services: {
        ...services,
        audit: this.audit,
        objects,
        blobs: new BlobService({ ...services, objects }),
        shares: new ShareService({ ...services, objects }),
        accounts,
        devices: new DeviceListService({ store: this.store, accounts, audit: this.audit, now }),
        challenges: new KeyChallenges({
          ...(options.cluster?.challenges === undefined
            ? {}
            : { store: options.cluster.challenges, relayId: 'scopesync-cluster' }),
          ...(options.cluster?.relayId === undefined ? {} : { relayId: options.cluster.relayId }),
        }),
        maxBodyBytes: options.limits?.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
        registration: options.auth?.registration ?? 'open',
      },
      metrics: this.metrics,
      rateLimit: options.rateLimit ?? {},
      staticFiles,
      clientAddress,
      corsOrigins: options.corsOrigins,
      metricsAccess: {
        token: options.metricsEndpoint?.token,
        served: options.metricsEndpoint?.port === undefined,
      },
      log: this.#log,
    });
    const requestTimeout = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    const timeouts = {
      requestTimeout,
      headersTimeout: Math.min(requestTimeout, 60_000),
      // How often Node checks those timeouts; its default (30 s) would make a short timeout moot.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(requestTimeout / 4))),
    };
    this.#api = api;
    this.#server = createServer(timeouts, (req, res) => api.handle(req, res));
    this.#metricsServer =
      options.metricsEndpoint?.port === undefined
        ? null
        : createServer(timeouts, (req, res) => api.handleMetrics(req, res));
    this.#server.on('upgrade', this.handleUpgrade);
  }

  /**
   * Answers one HTTP request of the API (its URL relative to where the relay is mounted): the
   * `(req, res)` handler of the relay, for a host server or Express (`app.use('/scopesync',
   * relay.handleRequest)`). Never throws.
   */
  readonly handleRequest = (req: IncomingMessage, res: ServerResponse): void => {
    this.#api.handle(req, res);
  };

  /**
   * Handles a WebSocket upgrade for `/sync` or `/sync/<name>` (URL relative to the mount): a host
   * server's `'upgrade'` listener. Refused upgrades get a plain HTTP error. Never throws.
   */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    try {
      this.syncServer.handleUpgrade(req, socket, head);
    } catch (error) {
      this.#log('error', 'WebSocket upgrade failed', { url: loggablePath(req.url), error });
      socket.destroy();
    }
  };

  /**
   * Mounts the relay into an existing Node HTTP server (`http.Server`, the server of an Express
   * app, Fastify's `fastify.server`) under `path` (default `/`): requests and upgrades under it go
   * to the relay (the path stripped), all others to the server's own handlers. Starts the mods
   * like {@link listen}; the relay opens no port of its own. `close()` detaches it again (the host
   * server keeps running).
   */
  async attach(server: Server, options: AttachOptions = {}): Promise<void> {
    if (this.#closing) throw new SyncError('Unavailable', 'the relay is closed');
    await this.#start();
    this.#detach.push(attachToServer(server, this, options));
  }

  /**
   * Follows the other relays: their document writes and events arrive through the transport
   * (if any), gaps and lost messages are read from the store, and open sockets are checked
   * against the stores periodically and after the transport reconnects.
   */
  #joinCluster(cluster: RelayCluster, docStore: DocStore, log: SyncLog): void {
    const feed = new DocFeed({
      bus: this.bus,
      target: this.hub,
      store: docStore,
      log,
      metrics: this.metrics,
    });
    const catchUp = (): void => {
      void feed.catchUpAll();
      void this.syncServer.revalidate();
    };
    const transport = cluster.transport;
    const link =
      transport === undefined
        ? null
        : new ClusterLink({
            bus: this.bus,
            transport,
            docEvents: (event) => feed.receive(event),
            catchUp,
            log,
            metrics: this.metrics,
            lease: this.#lease?.lease,
            fence: this.#lease?.fence,
            revalidate: () => this.syncServer.revalidate(),
            heartbeatMs: this.#lease?.heartbeatMs,
          });
    const timer = setInterval(() => void this.syncServer.revalidate(), cluster.revalidateMs ?? 30_000);
    timer.unref();
    this.#leaveCluster = async () => {
      clearInterval(timer);
      await link?.close();
      feed.close();
    };
  }

  /** `http://host:port` once listening; throws Unavailable before. */
  get url(): string {
    if (!this.#address) throw new SyncError('Unavailable', 'the relay is not listening yet');
    return this.#address.url;
  }

  /** Registers and starts the mods, then listens. Resolves with the port and URL. Idempotent. */
  listen(): Promise<RelayAddress> {
    if (this.#closing) return Promise.reject(new SyncError('Unavailable', 'the relay is closed'));
    this.#listening ??= this.#listen();
    return this.#listening;
  }

  /** Starts the audit anchor and the mods, once, whether the relay listens or is mounted. */
  #start(): Promise<void> {
    this.#starting ??= (async () => {
      await this.#anchor?.start();
      for (const mod of this.#options.mods ?? []) {
        const handle = await this.runtime.registerMod(mod);
        const stop: unknown = await mod.start?.({ mod: handle, runtime: this.runtime });
        if (typeof stop === 'function') this.#stops.push(stop as () => unknown);
      }
    })();
    return this.#starting;
  }

  async #listen(): Promise<RelayAddress> {
    await this.#start();
    const host = this.#options.host ?? DEFAULTS.host;
    await listenOn(this.#server, this.#options.port ?? DEFAULTS.port, host);
    this.#address = addressOf(this.#server, host);
    const metricsServer = this.#metricsServer;
    if (metricsServer !== null) {
      const metricsHost = this.#options.metricsEndpoint?.host ?? DEFAULTS.host;
      await listenOn(metricsServer, this.#options.metricsEndpoint?.port ?? 0, metricsHost);
      this.#metricsAddress = addressOf(metricsServer, metricsHost);
    }
    return this.#address;
  }

  /** `http://host:port` of the metrics listener (with `metricsEndpoint.port`), or null. */
  get metricsUrl(): string | null {
    return this.#metricsAddress?.url ?? null;
  }

  /**
   * Stops accepting connections, closes WebSockets with 1001 (going away), lets HTTP requests
   * in flight finish (up to `closeGraceMs`), commits pending writes, stops the mods and
   * closes the stores it opened. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const detach of this.#detach.splice(0)) detach();
    const stopped = new Promise<void>((resolve) => {
      if (!this.#server.listening) resolve();
      else this.#server.close(() => resolve());
    });
    if (this.#metricsServer?.listening) {
      this.#metricsServer.close();
      this.#metricsServer.closeAllConnections();
    }
    await this.#step('leaving the cluster', () => this.#leaveCluster?.());
    await this.#step('closing WebSockets', () => this.syncServer.close());
    this.#server.closeIdleConnections();
    const grace = this.#options.closeGraceMs ?? DEFAULTS.closeGraceMs;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stopped, new Promise<void>((resolve) => (timer = setTimeout(resolve, grace)))]);
    clearTimeout(timer);
    this.#server.closeAllConnections();
    await stopped;
    for (const stop of this.#stops.reverse()) await this.#step('stopping a mod', stop);
    await this.#step('flushing documents', () => this.hub.close());
    await this.#step('draining events', () => this.bus.close());
    await this.#step('anchoring the audit log', () => this.#anchor?.close());
    for (const store of this.#ownedStores) await this.#step('closing a store', () => store.close());
    this.#markClosed();
  }

  async #step(what: string, fn: () => unknown): Promise<void> {
    try {
      await fn();
    } catch (error) {
      this.#log('error', `${what} failed during close`, { error });
    }
  }
}

/** The size bound of each document, by its scope. */
function docSizeBounds(
  maxBytes: number | undefined,
  byScope: Readonly<Partial<Record<Scope | 'blob', number>>> = {},
): (name: DocName) => number {
  const fallback = maxBytes ?? DEFAULTS.maxDocBytes;
  return (name) => {
    const address = parseDocName(name);
    return byScope[address.kind === 'blob' ? 'blob' : address.scope] ?? fallback;
  };
}

function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void =>
      reject(new SyncError('Unavailable', `cannot listen: ${error.message}`, { cause: error }));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function addressOf(server: Server, host: string): RelayAddress {
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return { port, url: `http://${shownHost}:${port}` };
}

/** Creates a relay (not yet listening): `const relay = createRelay({port: 0}); await relay.listen()`. */
export function createRelay(options: RelayOptions = {}): Relay {
  return new Relay(options);
}

function openStores(options: RelayOptions): {
  relayStore: RelayStore;
  docStore: DocStore;
  owned: { close(): Promise<void> }[];
} {
  if (options.stores) {
    if (options.dataDir !== undefined)
      throw new SyncError('BadRequest', 'give either dataDir or stores, not both');
    return { ...options.stores, owned: [] };
  }
  if (options.dataDir === undefined) {
    const relayStore = new MemoryRelayStore();
    const docStore = new MemoryDocStore();
    return { relayStore, docStore, owned: [relayStore, docStore] };
  }
  mkdirSync(options.dataDir, { recursive: true });
  const cacheKiB = {
    relay: options.sqliteCacheKiB?.relay ?? DEFAULT_SQLITE_CACHE_KIB.relay,
    docs: options.sqliteCacheKiB?.docs ?? DEFAULT_SQLITE_CACHE_KIB.docs,
  };
  const relayStore: RelayStore = new SqliteRelayStore({
    path: join(options.dataDir, RELAY_DB_FILE),
    cacheKiB: cacheKiB.relay,
  });
  let docStore: DocStore;
  try {
    // Document writes are the relay's hot path: SQLite's checkpoint (two fsyncs and a copy into
    // the database file every thousand log pages) runs on a thread, so no socket waits for it.
    // Not the whole write: on two busy cores, waking a thread per commit cost more than the
    // append it moved (bench/results.md, "The relay's hot path, second pass").
    docStore = new SqliteDocStore({
      path: join(options.dataDir, DOCS_DB_FILE),
      checkpointOnThread: true,
      cacheKiB: cacheKiB.docs,
    });
  } catch (error) {
    void relayStore.close();
    throw error;
  }
  return { relayStore, docStore, owned: [relayStore, docStore] };
}
