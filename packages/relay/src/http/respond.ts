import type { ServerResponse } from 'node:http';
import { type ErrorKind, httpStatusOf, isSyncError } from '@scopesync/core';

// Writing HTTP answers. Every error body is `{"error": "<Kind>", "message": "…"}`.

/** Sends `body` as JSON with `status`. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** Sends an empty answer (204 by default). */
export function sendEmpty(res: ServerResponse, status = 204, headers: Record<string, string> = {}): void {
  res.writeHead(status, headers);
  res.end();
}

/** Sends the error body for `kind` with its HTTP status (from `httpStatusOf`). */
export function sendError(
  res: ServerResponse,
  kind: ErrorKind,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, httpStatusOf(kind), { error: kind, message }, headers);
}

/** The kind and message to answer for anything thrown; unknown errors become Internal without details. */
export function errorOf(error: unknown): { kind: ErrorKind; message: string } {
  // An Internal error's message may describe the relay's insides (SQL, paths): never send it.
  if (isSyncError(error) && error.kind !== 'Internal') return { kind: error.kind, message: error.message };
  return { kind: 'Internal', message: 'internal error' };
}
