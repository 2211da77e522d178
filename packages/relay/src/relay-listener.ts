/** Making a Node HTTP server listen, and the address it then answers at. */

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SyncError } from '@scopesync/core';

/** Where a listening relay is. */
export interface RelayAddress {
  readonly port: number;
  /** `http://host:port`, without a trailing slash. */
  readonly url: string;
}

/** Listens on `host:port`; Unavailable when the server cannot (the port is taken, …). */
export function listenOn(server: Server, port: number, host: string): Promise<void> {
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

/** Where `server` listens, as a URL a client on this machine can reach (`0.0.0.0` shown as `127.0.0.1`). */
export function addressOf(server: Server, host: string): RelayAddress {
  const { port } = server.address() as AddressInfo;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  return { port, url: `http://${shownHost}:${port}` };
}
