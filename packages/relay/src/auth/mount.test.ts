import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { attachToServer } from './mount.ts';

// Which requests a mounted relay takes, and the URL it sees: the mount path cut off, the rest
// (the app's own routes, look-alike prefixes) left to the host server.

const servers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of servers.splice(0)) await close();
});

async function mounted(path: string): Promise<{ base: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => res.end(`app ${req.url}`));
  attachToServer(
    server,
    {
      handleRequest: (req: IncomingMessage, res) => {
        seen.push(req.url ?? '');
        res.end(`relay ${req.url}`);
      },
      handleUpgrade: (_req, socket) => socket.destroy(),
    },
    { path },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const get = async (url: string): Promise<string> => (await fetch(url)).text();

describe('attachToServer', () => {
  it('routes the mount path and below to the relay, without the prefix', async () => {
    const { base } = await mounted('/scopesync/');
    expect(await get(`${base}/scopesync`)).toBe('relay /');
    expect(await get(`${base}/scopesync?x=1`)).toBe('relay /?x=1');
    expect(await get(`${base}/scopesync/keys/validate?key=k`)).toBe('relay /keys/validate?key=k');
    expect(await get(`${base}/scopesyncer/health`)).toBe('app /scopesyncer/health');
    expect(await get(`${base}/health`)).toBe('app /health');
  });

  it('takes everything at /, and refuses a path that is not absolute', async () => {
    const { base } = await mounted('/');
    expect(await get(`${base}/health`)).toBe('relay /health');
    expect(() =>
      attachToServer(createServer(), { handleRequest: () => {}, handleUpgrade: () => {} }, { path: 'x' }),
    ).toThrow(/must start with \//);
  });
});
