import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { SyncError } from '@scopesync/core';

/** Options of `Relay.attach`. */
export interface AttachOptions {
  /** Where the relay answers on the host server, e.g. `/scopesync`. Default `/`: everything. */
  readonly path?: string | undefined;
}

/** The two handlers a mounted relay needs (see `Relay.handleRequest` / `Relay.handleUpgrade`). */
export interface MountableRelay {
  readonly handleRequest: (req: IncomingMessage, res: ServerResponse) => void;
  readonly handleUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Routes a host server's requests and upgrades under `path` to the relay (with the path cut off
 * its URL) and everything else to the server's own request listeners, which it wraps. Returns the
 * function that undoes it.
 */
export function attachToServer(server: Server, relay: MountableRelay, options: AttachOptions): () => void {
  const prefix = normalizePrefix(options.path ?? '/');
  const own = server.listeners('request') as RequestListener[];
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    if (stripPrefix(req, prefix)) {
      relay.handleRequest(req, res);
      return;
    }
    for (const listener of own) listener.call(server, req, res);
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (stripPrefix(req, prefix)) {
      relay.handleUpgrade(req, socket, head);
      return;
    }
    // Another listener may take it; with none, Node would have closed it: do the same.
    if (server.listenerCount('upgrade') === 1) socket.destroy();
  };
  server.removeAllListeners('request');
  server.on('request', onRequest);
  server.on('upgrade', onUpgrade);
  return () => {
    server.off('request', onRequest);
    server.off('upgrade', onUpgrade);
    for (const listener of own)
      if (!server.listeners('request').includes(listener)) server.on('request', listener);
  };
}

/** `/scopesync/` → `/scopesync`; `/` → ``. BadRequest for a path that is not absolute. */
function normalizePrefix(path: string): string {
  if (!path.startsWith('/') || /[?#]/.test(path))
    throw new SyncError('BadRequest', `the mount path must start with / and hold no query: ${path}`);
  return path.replace(/\/+$/, '');
}

/** When the request is under the prefix, cuts it off its URL (keeping `/…` and the query) and says true. */
function stripPrefix(req: IncomingMessage, prefix: string): boolean {
  const url = req.url ?? '/';
  if (prefix === '') return true;
  if (!url.startsWith(prefix)) return false;
  const rest = url.slice(prefix.length);
  if (rest !== '' && rest[0] !== '/' && rest[0] !== '?') return false;
  req.url = rest === '' || rest[0] === '?' ? `/${rest}` : rest;
  return true;
}
