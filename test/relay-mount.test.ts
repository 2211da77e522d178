import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRelay, type Relay } from '@scopesync/relay';
import express from 'express';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { mustOpen, openSocket } from './support/auth-sockets.ts';
import { call, enc } from './support/http-client.ts';

// The relay mounted into an app's own Node server (docs/auth.md, "Mounting"): its API and both
// sync endpoints under a path, the app's own routes untouched, on one port.

const quiet = { log: () => undefined, closeGraceMs: 500 } as const;
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function relayFor(): Relay {
  const relay = createRelay(quiet);
  cleanup.push(() => relay.close());
  return relay;
}

/** What a user notices: the app's route, the relay's HTTP API and both sync endpoints answer on one port. */
async function expectServes(base: string, relay: Relay): Promise<void> {
  const app = await call(base, 'GET', '/hello');
  expect(app.status).toBe(200);
  expect(new TextDecoder().decode(app.bytes)).toBe('hello from the app');
  expect((await call(base, 'GET', '/scopesync/health')).json).toMatchObject({ status: 'ok' });
  const { key, userId } = await relay.runtime.createUser({ deviceName: 'mounted' });
  const written = await call(base, 'POST', `/scopesync/userdata/${userId}/USER_PUBLIC/profile`, {
    key,
    body: { value: { name: 'Ann' } },
  });
  expect(written.status).toBe(200);
  const wsBase = `${base.replace(/^http/, 'ws')}/scopesync`;
  const mux = await mustOpen(wsBase, '/sync', { subprotocol: key });
  mux.send(`USER_PRIVATE/${userId}/notes`, { type: 'subscribe', mode: 'encrypted', sinceSeq: 0 });
  expect(await mux.next((m) => m.type === 'permission')).toMatchObject({ access: 'read-write' });
  const single = await mustOpen(wsBase, `/sync/${enc(`USER_PUBLIC/${userId}/profile`)}`, { header: key });
  expect(single.ws.readyState).toBe(single.ws.OPEN);
  // Refusals are the relay's: a bad key is 401 at the upgrade, outside the mount the app decides.
  const refused = await openSocket(wsBase, '/sync', { header: 'x'.repeat(43) });
  expect(refused.ok ? 101 : refused.status).toBe(401);
  expect((await call(base, 'GET', '/scopesync/nope')).status).toBe(404);
  mux.ws.close();
  single.ws.close();
}

describe('a relay mounted into an existing server', () => {
  it('http.Server: attach() serves the relay under /scopesync and leaves the app its routes', async () => {
    const server = createServer((req, res) => {
      res.writeHead(req.url === '/hello' ? 200 : 404, { 'content-type': 'text/plain' });
      res.end(req.url === '/hello' ? 'hello from the app' : 'app 404');
    });
    const relay = relayFor();
    await relay.attach(server, { path: '/scopesync' });
    const base = await listen(server);
    await expectServes(base, relay);
    // Closing the relay detaches it; the app's server keeps serving.
    await relay.close();
    expect((await call(base, 'GET', '/hello')).status).toBe(200);
    expect((await call(base, 'GET', '/scopesync/health')).status).toBe(404);
  });

  it('Express: attach() to the server of an app', async () => {
    const app = express();
    app.get('/hello', (_req, res) => {
      res.type('text/plain').send('hello from the app');
    });
    const server = createServer(app);
    const relay = relayFor();
    await relay.attach(server, { path: '/scopesync' });
    await expectServes(await listen(server), relay);
  });

  it('Express: handleRequest as middleware and handleUpgrade on the server', async () => {
    const app = express();
    app.get('/hello', (_req, res) => {
      res.type('text/plain').send('hello from the app');
    });
    const relay = relayFor();
    // Express strips the mount path from req.url; the upgrade is routed by hand.
    app.use('/scopesync', relay.handleRequest);
    const server = createServer(app);
    server.on('upgrade', (req, socket, head) => {
      if (!req.url?.startsWith('/scopesync/')) return socket.destroy();
      req.url = req.url.slice('/scopesync'.length);
      relay.handleUpgrade(req, socket, head);
    });
    await expectServes(await listen(server), relay);
  });

  it('Fastify: attach() to fastify.server', async () => {
    const app = Fastify();
    app.get('/hello', async (_req, reply) => reply.type('text/plain').send('hello from the app'));
    await app.ready();
    const relay = relayFor();
    await relay.attach(app.server, { path: '/scopesync' });
    await app.listen({ port: 0, host: '127.0.0.1' });
    cleanup.push(() => app.close());
    await expectServes(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, relay);
  });
});
