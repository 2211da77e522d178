import { isErrorKind, kindOfHttpStatus, SyncError } from '@scopesync/core';
import type { TokenSource } from './token-source.ts';

/** The `fetch` function the client uses (the global one by default). */
export type FetchFunction = (input: string, init?: RequestInit) => Promise<Response>;

/** How {@link HttpApi} reaches the relay. */
export interface HttpApiOptions {
  /** The relay's base URL, `http(s)://host[:port]`, without a trailing slash. */
  readonly baseUrl: string;
  readonly fetch: FetchFunction;
  /** The API key to send, read at every request (it may be learnt after construction). */
  readonly apiKey: () => string | undefined;
  /**
   * The app's token, sent as `Authorization: Bearer` instead of the API key when given; a request
   * refused with 401 is sent once more with a fresh token.
   */
  readonly token?: TokenSource | undefined;
  /** Give up on a request after this long (milliseconds). */
  readonly timeoutMs: number;
}

/** One HTTP request. */
export interface HttpRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path and query, starting with `/`; dynamic segments already encoded with {@link segment}. */
  readonly path: string;
  /** A JSON body. */
  readonly json?: unknown;
  /** A raw body. */
  readonly bytes?: Uint8Array;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Encodes one dynamic path segment (a key or blob id may contain `/`: it stays one segment). */
export function segment(value: string): string {
  return encodeURIComponent(value);
}

/**
 * A thin client of the relay's HTTP API (DESIGN §4). Every failure is a SyncError: the
 * relay's `{error, message}` body becomes its kind and message, an unreachable relay or a
 * timeout becomes Unavailable.
 */
export class HttpApi {
  readonly #options: HttpApiOptions;

  constructor(options: HttpApiOptions) {
    this.#options = options;
  }

  /** Sends a request; resolves with the response when its status is 2xx, throws a SyncError otherwise. */
  async send(request: HttpRequest): Promise<Response> {
    const tokens = this.#options.token;
    if (tokens === undefined) return this.#send(request, this.#options.apiKey(), undefined);
    try {
      return await this.#send(request, undefined, await tokens.current());
    } catch (error) {
      // The cached token expired or was refused: one more try with a fresh one.
      if (!(error instanceof SyncError) || error.kind !== 'Unauthorized') throw error;
      return this.#send(request, undefined, await tokens.refresh());
    }
  }

  async #send(request: HttpRequest, key: string | undefined, token: string | undefined): Promise<Response> {
    const headers: Record<string, string> = { ...request.headers };
    if (key !== undefined) headers['x-api-key'] = key;
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    let body: BodyInit | undefined;
    if (request.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(request.json);
    } else if (request.bytes !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      body = request.bytes as Uint8Array<ArrayBuffer>;
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#options.timeoutMs);
    let response: Response;
    try {
      response = await this.#options.fetch(`${this.#options.baseUrl}${request.path}`, {
        method: request.method,
        headers,
        ...(body === undefined ? {} : { body }),
        signal: controller.signal,
      });
    } catch (error) {
      clearTimeout(timer);
      throw new SyncError('Unavailable', `the relay is unreachable (${request.method} ${request.path})`, {
        cause: error,
      });
    }
    clearTimeout(timer);
    if (response.ok) return response;
    throw await errorOf(response, request);
  }

  /** Sends a request and parses the JSON answer. */
  async json<T>(request: HttpRequest): Promise<T> {
    const response = await this.send(request);
    try {
      return (await response.json()) as T;
    } catch (error) {
      throw new SyncError('InvalidMessage', `the relay answered ${request.path} with invalid JSON`, {
        cause: error,
      });
    }
  }
}

async function errorOf(response: Response, request: HttpRequest): Promise<SyncError> {
  let kind = kindOfHttpStatus(response.status);
  let message = `${request.method} ${request.path} failed with HTTP ${response.status}`;
  try {
    const body = (await response.json()) as { error?: unknown; message?: unknown };
    if (isErrorKind(body.error)) kind = body.error;
    if (typeof body.message === 'string' && body.message !== '') message = body.message;
  } catch {
    // Not a JSON error body: the status alone decides.
  }
  return new SyncError(kind, message);
}
