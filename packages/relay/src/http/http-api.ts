import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Caller, callerId, SyncError } from '@scopesync/core';
import type { UserCaller } from '../access-control.ts';
import { apiKeyOf, hashApiKey } from '../credentials.ts';
import type { Counter, Histogram, Metrics } from '../metrics.ts';
import { type RateLimitBuckets, RateLimiter, type RateLimitOptions } from '../rate-limiter.ts';
import type { RelayLog } from '../relay-log.ts';
import { accountRoutes } from './account-routes.ts';
import { auditRoutes } from './audit-routes.ts';
import { blobRoutes } from './blob-routes.ts';
import { ClientAddress } from './client-address.ts';
import { deviceListRoutes } from './device-list-routes.ts';
import { docKeyRoutes } from './doc-key-routes.ts';
import { keyGrantRoutes } from './key-grant-routes.ts';
import { keyRoutes } from './key-routes.ts';
import { memberListRoutes } from './member-list-routes.ts';
import { checkContentLength, parseRequestUrl } from './request.ts';
import { loggablePath, type RequestSeen, requestLogContext } from './request-log.ts';
import { errorOf, sendEmpty, sendError, sendJson } from './respond.ts';
import { matchRoute, type Route, type RouteMethod, type RouteRequest, type RouteServices } from './route.ts';
import { setApiSecurityHeaders } from './security-headers.ts';
import { shareRoutes } from './share-routes.ts';
import type { StaticFiles } from './static-files.ts';
import { userdataRoutes } from './userdata-routes.ts';

/** Options of {@link HttpApi}. */
export interface HttpApiOptions {
  readonly services: RouteServices;
  readonly metrics: Metrics;
  /** Per-caller token buckets: options of in-memory ones, shared buckets, or false for none. */
  readonly rateLimit: Partial<RateLimitOptions> | RateLimitBuckets | false;
  /** The web app served at `/`, if any. */
  readonly staticFiles?: StaticFiles | null | undefined;
  /** Where a request comes from (trusted proxies); default: the TCP peer. */
  readonly clientAddress?: ClientAddress | undefined;
  /** Origins a browser may call the API from; undefined or `['*']`: any (see {@link corsHeaders}). */
  readonly corsOrigins?: readonly string[] | undefined;
  /**
   * GET /metrics: `token` makes it answer only `Authorization: Bearer <token>`; `served: false`
   * leaves it to a listener of its own (see {@link HttpApi.handleMetrics}). Default: served, open.
   */
  readonly metricsAccess?: { readonly token?: string | undefined; readonly served?: boolean } | undefined;
  readonly log: RelayLog;
}

/** First path segments that belong to the API: never answered by the static app. */
const API_PREFIXES: ReadonlySet<string> = new Set([
  'keys',
  'doc-keys',
  'users',
  'userdata',
  'blob',
  'share',
  'audit',
  'health',
  'metrics',
  'sync',
]);

const CORS_HEADERS: Readonly<Record<string, string>> = {
  'access-control-allow-methods': 'GET, HEAD, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers':
    'content-type, x-api-key, authorization, if-match, if-none-match, x-scopesync-encrypted',
  'access-control-expose-headers': 'etag, retry-after',
  'access-control-max-age': '600',
};

/**
 * The relay's HTTP API (DESIGN §4) on node:http: routing, CORS, body-size and rate limits,
 * authentication, and one error format (`{"error": kind, "message"}`, status from
 * `httpStatusOf`). A request never crashes the relay: anything unexpected is logged and
 * answered 500.
 */
export class HttpApi {
  readonly #routes: readonly Route[];
  readonly #services: RouteServices;
  readonly #metrics: Metrics;
  readonly #limiter: RateLimitBuckets | null;
  readonly #static: StaticFiles | null;
  readonly #clientAddress: ClientAddress;
  readonly #corsOrigins: ReadonlySet<string> | null;
  readonly #metricsToken: Buffer | null;
  readonly #metricsServed: boolean;
  readonly #log: RelayLog;
  readonly #started = Date.now();
  readonly #requests: Counter;
  readonly #clientErrors: Counter;
  readonly #serverErrors: Counter;
  readonly #rateLimited: Counter;
  readonly #seconds: Histogram;

  constructor(options: HttpApiOptions) {
    const s = options.services;
    this.#services = s;
    this.#metrics = options.metrics;
    const limit = options.rateLimit;
    this.#limiter = limit === false ? null : 'take' in limit ? limit : new RateLimiter(limit);
    this.#static = options.staticFiles ?? null;
    this.#clientAddress = options.clientAddress ?? new ClientAddress();
    const origins = options.corsOrigins;
    this.#corsOrigins = origins === undefined || origins.includes('*') ? null : new Set(origins);
    const token = options.metricsAccess?.token;
    this.#metricsToken = token === undefined ? null : Buffer.from(token);
    this.#metricsServed = options.metricsAccess?.served ?? true;
    this.#log = options.log;
    this.#routes = [
      ...keyRoutes(s),
      ...accountRoutes(s),
      ...userdataRoutes(s),
      ...docKeyRoutes(s),
      ...keyGrantRoutes(s),
      ...memberListRoutes(s),
      ...deviceListRoutes(s),
      ...blobRoutes(s),
      ...shareRoutes(s),
      ...auditRoutes(s),
      { pattern: ['health'], methods: { GET: (r) => this.#health(r) } },
      ...(this.#metricsServed
        ? [{ pattern: ['metrics'], methods: { GET: (r: RouteRequest) => this.#metricsText(r) } }]
        : []),
    ];
    const m = options.metrics;
    this.#requests = m.counter('scopesync_http_requests_total', 'HTTP requests received.');
    this.#clientErrors = m.counter(
      'scopesync_http_client_errors_total',
      'HTTP requests answered with a 4xx status.',
    );
    this.#serverErrors = m.counter(
      'scopesync_http_server_errors_total',
      'HTTP requests answered with a 5xx status.',
    );
    this.#rateLimited = m.counter(
      'scopesync_http_rate_limited_total',
      'HTTP requests refused by the rate limit.',
    );
    this.#seconds = m.histogram('scopesync_http_request_seconds', 'Time to answer an HTTP request.');
  }

  /** Answers one request. Never throws and never rejects. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    this.#requests.inc();
    // A client that goes away mid-body makes the request emit 'error'; the answer just goes nowhere.
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    res.on('finish', () => {
      this.#seconds.observe((performance.now() - started) / 1000);
      if (res.statusCode >= 500) this.#serverErrors.inc();
      else if (res.statusCode >= 400) this.#clientErrors.inc();
    });
    const seen: RequestSeen = { route: null, caller: null };
    // 'close' follows 'finish', and also comes alone for an answer cut short: one line either way.
    res.on('close', () => {
      // A refused caller (401, 403) is a denial: operators filter on `notice` to see them all.
      const denied = res.statusCode === 401 || res.statusCode === 403;
      const context = requestLogContext(req, res, seen, started);
      this.#log(denied ? 'notice' : 'info', 'http request', denied ? { ...context, denied } : context);
    });
    this.#handle(req, res, seen).catch((error: unknown) => this.#fail(req, res, error));
  }

  /** Answers a request on the metrics listener: GET /metrics (with its token, if any), else 404. Never throws. */
  handleMetrics(req: IncomingMessage, res: ServerResponse): void {
    const run = async (): Promise<void> => {
      const { segments } = parseRequestUrl(req.url);
      if (
        segments.length !== 1 ||
        segments[0] !== 'metrics' ||
        (req.method !== 'GET' && req.method !== 'HEAD')
      )
        throw new SyncError('NotFound', 'this listener serves GET /metrics only');
      await this.#metricsText({ req, res } as RouteRequest);
    };
    req.on('error', () => undefined);
    run().catch((error: unknown) => this.#fail(req, res, error));
  }

  async #handle(req: IncomingMessage, res: ServerResponse, seen: RequestSeen): Promise<void> {
    setApiSecurityHeaders(res);
    this.#setCorsHeaders(req, res);
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') {
      sendEmpty(res, 204);
      return;
    }
    checkContentLength(req, this.#services.maxBodyBytes);
    const { segments, query } = parseRequestUrl(req.url);
    const retryAfter = await this.#rateLimit(req);
    if (retryAfter !== null) {
      const headers: Record<string, string> = { 'retry-after': String(retryAfter) };
      if (!req.complete) headers.connection = 'close';
      sendError(res, 'RateLimited', 'too many requests: slow down', headers);
      return;
    }

    const match = matchRoute(this.#routes, segments);
    if (match) seen.route = `/${match.route.pattern.join('/')}`;
    if (!match) {
      if (segments[0] === 'sync')
        throw new SyncError('BadRequest', 'this is a WebSocket endpoint: connect with an Upgrade');
      const first = segments[0] ?? '';
      if (this.#static && !API_PREFIXES.has(first) && (await this.#static.serve(req, res, segments))) return;
      throw new SyncError('NotFound', `no route ${method} /${segments.join('/').slice(0, 200)}`);
    }
    const handler = match.route.methods[(method === 'HEAD' ? 'GET' : method) as RouteMethod];
    if (!handler || !['GET', 'HEAD', 'POST', 'PUT', 'DELETE'].includes(method)) {
      const allow = Object.keys(match.route.methods);
      if (allow.includes('GET')) allow.push('HEAD');
      // 405 has no ErrorKind of its own; a client reading the body sees a BadRequest.
      const message = `${method} is not allowed here; use ${allow.join(', ')}`;
      sendJson(res, 405, { error: 'BadRequest', message }, { allow: allow.join(', ') });
      return;
    }
    let caller: Promise<Caller> | null = null;
    const request: RouteRequest = {
      req,
      res,
      params: match.params,
      query,
      caller: () => {
        caller ??= this.#services.access.authenticate(req).then((c) => {
          seen.caller = callerId(c);
          return c;
        });
        return caller;
      },
      user: async () => {
        const c = await request.caller();
        if (c.kind !== 'user') throw new SyncError('Unauthorized', 'an API key is required');
        return c as UserCaller;
      },
    };
    await handler(request);
  }

  /** Takes a token for the caller; the seconds to wait when there is none, else null. */
  async #rateLimit(req: IncomingMessage): Promise<number | null> {
    if (!this.#limiter) return null;
    const key = apiKeyOf(req);
    // Keys are bucketed by hash so the limiter holds no secrets; guests by their address.
    const id = key === null ? `ip:${this.#clientAddress.of(req)}` : `key:${hashApiKey(key)}`;
    const verdict = await this.#limiter.take(id);
    if (verdict.ok) return null;
    this.#rateLimited.inc();
    return verdict.retryAfterSeconds;
  }

  async #health(r: RouteRequest): Promise<void> {
    sendJson(r.res, 200, { status: 'ok', uptime_seconds: Math.round((Date.now() - this.#started) / 1000) });
  }

  /**
   * CORS: with no allow-list, any origin (API keys travel in headers, never cookies, so a page
   * on another origin has no ambient credential to abuse); with one, only the listed origins are
   * told they may read answers, and the answer varies by Origin.
   */
  #setCorsHeaders(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin;
    if (this.#corsOrigins !== null) {
      res.setHeader('vary', 'origin');
      if (origin === undefined || !this.#corsOrigins.has(origin)) return;
    }
    res.setHeader('access-control-allow-origin', this.#corsOrigins === null ? '*' : (origin as string));
    for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
  }

  async #metricsText(r: RouteRequest): Promise<void> {
    if (this.#metricsToken !== null && !bearerMatches(r.req, this.#metricsToken)) {
      throw new SyncError('Unauthorized', 'GET /metrics needs Authorization: Bearer <metrics token>');
    }
    const text = this.#metrics.render();
    r.res.writeHead(200, {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
    });
    r.res.end(text);
  }

  #fail(req: IncomingMessage, res: ServerResponse, error: unknown): void {
    const { kind, message } = errorOf(error);
    if (kind === 'Internal')
      this.#log('error', 'HTTP request failed', { method: req.method, path: loggablePath(req.url), error });
    if (res.headersSent) {
      // Half an answer is out: the only honest thing left is to cut the connection.
      res.destroy();
      return;
    }
    const headers: Record<string, string> = {};
    // A body we did not read (too large, or refused before reading) must not be read as the next request.
    if (!req.complete) headers.connection = 'close';
    try {
      sendError(res, kind, message, headers);
    } catch (sendFailure) {
      this.#log('warn', 'could not send an error answer', { error: sendFailure });
      res.destroy();
    }
  }
}

/** Whether the request carries `Authorization: Bearer <token>`, compared in constant time. */
function bearerMatches(req: IncomingMessage, token: Buffer): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!match?.[1]) return false;
  const given = Buffer.from(match[1]);
  return given.length === token.length && timingSafeEqual(given, token);
}
