import type { IncomingMessage, ServerResponse } from 'node:http';

// Headers on everything the relay serves. The relay serves the web app that holds a user's
// keys, so script injected into that page (a compromised dependency's CDN, an XSS) could use
// them: a strict Content-Security-Policy lets the page run only the relay's own files, talk
// only to the relay, and never be framed. API answers are JSON, never a document: they get a
// policy that allows nothing at all, so a JSON answer opened as a page cannot run anything.

/** The policy of API answers: JSON that must never act as a page. */
const API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** A Host header we may echo into the policy: a hostname or [IPv6], an optional port. */
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The Content-Security-Policy of the served web app: its own scripts only (no inline script, no
 * eval; `wasm-unsafe-eval` lets libsodium compile its WebAssembly), its own styles, connections
 * to the relay only (same origin, and its WebSocket endpoints), no plugins, no framing, no
 * `<base>` rewriting, forms only to itself. `host` (the request's Host) names the WebSocket
 * origin explicitly for browsers that do not match ws(s) with 'self'.
 */
export function appContentSecurityPolicy(host: string | undefined): string {
  const sockets = host !== undefined && HOST.test(host) ? ` ws://${host} wss://${host}` : '';
  return [
    "default-src 'none'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self'${sockets}`,
    "worker-src 'self'",
    "manifest-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Headers every answer carries, API or file. */
const COMMON: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** Sets the API answer headers on `res` (a static file answer replaces the policy with the app's). */
export function setApiSecurityHeaders(res: ServerResponse): void {
  for (const [name, value] of Object.entries(COMMON)) res.setHeader(name, value);
  res.setHeader('content-security-policy', API_POLICY);
}

/** The headers of a served file of the web app. */
export function appSecurityHeaders(req: IncomingMessage): Record<string, string> {
  return {
    ...COMMON,
    'content-security-policy': appContentSecurityPolicy(req.headers.host),
    // The page holds keys: no other window keeps a handle on it, and no other site embeds its files.
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
  };
}
