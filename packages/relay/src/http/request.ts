import type { IncomingMessage } from 'node:http';
import { SyncError } from '@scopesync/core';

// Reading and validating what an HTTP request carries. Plain functions; each throws a
// SyncError of kind BadRequest/TooLarge for input outside its grammar.

/** A request's path split into decoded segments, and its query. */
export interface ParsedUrl {
  readonly segments: readonly string[];
  readonly query: URLSearchParams;
}

/**
 * Splits the request target into percent-decoded path segments and the query. Only
 * origin-form targets (`/path?query`) are accepted; a malformed escape is a BadRequest. A
 * decoded segment may contain `/` (a key sent as one `encodeURIComponent` segment).
 */
export function parseRequestUrl(url: string | undefined): ParsedUrl {
  const target = url ?? '';
  const path = requestPath(target);
  const hash = target.indexOf('#');
  const withoutHash = hash >= 0 ? target.slice(0, hash) : target;
  const q = withoutHash.indexOf('?');
  const segments = path
    .slice(1)
    .split('/')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        throw new SyncError('BadRequest', 'the path has a malformed percent escape');
      }
    });
  return { segments, query: new URLSearchParams(q >= 0 ? withoutHash.slice(q + 1) : '') };
}

/**
 * The path of an origin-form request target (`/path?query#fragment` → `/path`), as sent: not
 * percent-decoded, dot segments kept (a name with `..` is then refused by its own grammar
 * instead of resolved). BadRequest for any other form (`http://host/…`, `*`, empty).
 */
export function requestPath(target: string): string {
  if (!target.startsWith('/')) throw new SyncError('BadRequest', 'the request target must be a path');
  let end = target.indexOf('?');
  if (end < 0) end = target.length;
  const hash = target.indexOf('#');
  if (hash >= 0 && hash < end) end = hash;
  return end === target.length ? target : target.slice(0, end);
}

/**
 * The first value of the query parameter `name` in a request target (everything after its first
 * `?`), as `URLSearchParams` reads it; null when there is none. A query without escapes (`%`,
 * `+`) — every API key and token — is scanned in place, without a `URLSearchParams` per request.
 */
export function queryParam(target: string, name: string): string | null {
  const start = target.indexOf('?');
  if (start < 0) return null;
  if (target.includes('%', start) || target.includes('+', start)) {
    return new URLSearchParams(target.slice(start + 1)).get(name);
  }
  for (let at = start + 1; at <= target.length; ) {
    let end = target.indexOf('&', at);
    if (end < 0) end = target.length;
    const eq = target.indexOf('=', at);
    const nameEnd = eq >= 0 && eq < end ? eq : end;
    if (nameEnd - at === name.length && target.startsWith(name, at)) {
      return nameEnd === end ? '' : target.slice(nameEnd + 1, end);
    }
    at = end + 1;
  }
  return null;
}

/**
 * The declared Content-Length, or null for none. TooLarge when it exceeds `max`, so a huge
 * upload is refused before a byte of it is read.
 */
export function checkContentLength(request: IncomingMessage, max: number): number | null {
  const raw = request.headers['content-length'];
  if (raw === undefined) return null;
  if (!/^\d+$/.test(raw)) throw new SyncError('BadRequest', 'Content-Length must be a number');
  const length = Number(raw);
  if (length > max) throw new SyncError('TooLarge', `the body is larger than ${max} bytes`);
  return length;
}

/** Body bytes read from each request so far (for the request log line). */
const bodyBytes = new WeakMap<IncomingMessage, number>();

/** How many body bytes the relay read from `request` (0 when it never read the body). */
export function bodyBytesRead(request: IncomingMessage): number {
  return bodyBytes.get(request) ?? 0;
}

/**
 * Reads the whole body, up to `max` bytes. Rejects with TooLarge as soon as more arrives
 * (without buffering the rest) and with BadRequest when the client aborts.
 */
export function readBody(request: IncomingMessage, max: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (error: SyncError | null): void => {
      if (settled) return;
      settled = true;
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onError);
      request.off('close', onClose);
      if (error) {
        // Stop reading: the answer goes out with Connection: close and the socket ends.
        request.pause();
        reject(error);
      } else {
        const body = Buffer.concat(chunks, size);
        resolve(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
      }
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.byteLength;
      bodyBytes.set(request, size);
      if (size > max) finish(new SyncError('TooLarge', `the body is larger than ${max} bytes`));
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish(null);
    const onError = (error: Error): void =>
      finish(new SyncError('BadRequest', 'the request body was aborted', { cause: error }));
    const onClose = (): void => {
      if (!request.complete) finish(new SyncError('BadRequest', 'the request body was aborted'));
    };
    request.on('data', onData);
    request.on('end', onEnd);
    request.on('error', onError);
    request.on('close', onClose);
  });
}

/** Reads a JSON body that must be an object. BadRequest for invalid JSON or another type. */
export async function readJsonObject(
  request: IncomingMessage,
  max: number,
): Promise<Record<string, unknown>> {
  const bytes = await readBody(request, max);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new SyncError('BadRequest', 'the body is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SyncError('BadRequest', 'the body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/**
 * An `If-Match` (or `If-None-Match`) version: `3`, `"3"` or `W/"3"`. Undefined when the
 * header is absent; BadRequest for anything but one non-negative integer version.
 */
export function parseVersionHeader(
  request: IncomingMessage,
  header: 'if-match' | 'if-none-match',
): number | undefined {
  const raw = request.headers[header];
  if (raw === undefined) return undefined;
  const value = Array.isArray(raw) ? raw.join(',') : raw;
  const match = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(value);
  if (!match?.[1]) throw new SyncError('BadRequest', `${header} must be one version number, e.g. "3"`);
  return Number(match[1]);
}

/** An optional integer query parameter within [min, max]; `fallback` when absent. BadRequest otherwise. */
export function intParam(
  query: URLSearchParams,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number;
export function intParam(query: URLSearchParams, name: string, min: number, max: number): number | undefined;
export function intParam(
  query: URLSearchParams,
  name: string,
  min: number,
  max: number,
  fallback?: number,
): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === '') return fallback;
  if (!/^-?\d{1,16}$/.test(raw)) throw new SyncError('BadRequest', `${name} must be an integer`);
  const value = Number(raw);
  if (value < min || value > max)
    throw new SyncError('BadRequest', `${name} must be between ${min} and ${max}`);
  return value;
}

/** An optional flag field of a JSON body (`read`/`write`): undefined when absent, BadRequest when not an integer. */
export function flagField(body: Record<string, unknown>, name: 'read' | 'write'): number | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value))
    throw new SyncError('BadRequest', `${name} must be an integer`);
  return value;
}
