import type { IncomingMessage, ServerResponse } from 'node:http';
import { apiKeyOf, isApiKeyShaped } from '../credentials.ts';
import { bodyBytesRead } from './request.ts';

/** What the API learned about a request while answering it. */
export interface RequestSeen {
  /** The matched route's pattern (`/userdata/:ns/:scope/:key`), or null when none matched. */
  route: string | null;
  /** The authenticated caller's id (`user_…`), once the route asked for it. */
  caller: string | null;
}

/** Longest path a log line carries. */
const MAX_LOGGED_PATH = 200;

/**
 * The context of a request's `info` log line: method, route pattern, path (without the query
 * and with anything shaped like an API key replaced by `[key]`, e.g. `DELETE /keys/<key>`),
 * status, duration, body bytes in and out, and the caller — its id once authenticated,
 * `guest` without a key, `unverified` with a key the route never checked or that was refused.
 * Never a key, a token or a body.
 */
export function requestLogContext(
  req: IncomingMessage,
  res: ServerResponse,
  seen: RequestSeen,
  startedAt: number,
): Record<string, unknown> {
  const context: Record<string, unknown> = {
    method: req.method ?? 'GET',
    route: seen.route,
    // The key being revoked is the whole point of this path: never log it, whatever its shape.
    path: seen.route === '/keys/:key' ? '/keys/[key]' : loggablePath(req.url),
    status: res.statusCode,
    ms: Math.round((performance.now() - startedAt) * 10) / 10,
    bytes_in: bodyBytesRead(req),
    bytes_out: Number(res.getHeader('content-length') ?? 0) || 0,
    caller: seen.caller ?? (apiKeyOf(req) === null ? 'guest' : 'unverified'),
  };
  if (!res.writableFinished) context.aborted = true;
  return context;
}

/** The path of a request target without its query, API-key-shaped segments replaced. */
export function loggablePath(url: string | undefined): string {
  const target = url ?? '';
  const end = target.search(/[?#]/);
  const path = end >= 0 ? target.slice(0, end) : target;
  const redacted = path
    .split('/')
    .map((segment) => {
      let decoded = segment;
      try {
        decoded = decodeURIComponent(segment);
      } catch {
        // A malformed escape is logged as sent.
      }
      return isApiKeyShaped(segment) || isApiKeyShaped(decoded) ? '[key]' : segment;
    })
    .join('/');
  return redacted.length > MAX_LOGGED_PATH ? `${redacted.slice(0, MAX_LOGGED_PATH)}…` : redacted;
}
