import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { type DocStore, KeyedMutex, type RelayStore, SyncError } from '@scopesync/core';
import { AccessControl } from './access-control.ts';
import {
  AUDIT_ANCHOR_FILE,
  AUDIT_KEY_FILE,
  AuditAnchorKeeper,
  loadOrCreateAuditKey,
} from './audit-anchor.ts';
import { AuditLog } from './audit-log.ts';
import { JwtVerifier } from './auth/jwt-verifier.ts';
import { type AttachOptions, attachToServer } from './auth/mount.ts';
import { TokenUsers } from './auth/token-users.ts';
import { clusterLeaseOf } from './cluster/cluster-lease.ts';
import { ClusterLink } from './cluster/cluster-link.ts';
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
import { Metrics } from './metrics.ts';
import { addressOf, listenOn, type RelayAddress } from './relay-listener.ts';
import { consoleRelayLog, type RelayLog } from './relay-log.ts';
import { DEFAULTS, docSizeBounds, type RelayCluster, type RelayOptions } from './relay-options.ts';
import { openStores } from './relay-stores.ts';
import { RelayRuntime } from './runtime.ts';
import { AccountService } from './services/account-service.ts';
import { BlobService } from './services/blob-service.ts';
import { DeviceListService } from './services/device-list-service.ts';
import { ObjectService } from './services/object-service.ts';
import { ShareService } from './services/share-service.ts';
import { SyncAccess } from './services/sync-access.ts';
import type { SyncLog } from './sync/sync-log.ts';
import { SyncServer } from './sync/sync-server.ts';

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

/** Creates a relay (not yet listening): `const relay = createRelay({port: 0}); await relay.listen()`. */
export function createRelay(options: RelayOptions = {}): Relay {
  return new Relay(options);
}
