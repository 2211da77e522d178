import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSyncError } from '@scopesync/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseRequestUrl } from './request.ts';
import { StaticFiles, staticRootProblem } from './static-files.ts';

describe('StaticFiles', () => {
  let base: string;
  let server: Server | null = null;

  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'scopesync-static-'));
    await mkdir(join(base, 'site', 'assets'), { recursive: true });
    await writeFile(join(base, 'site', 'index.html'), '<p>app</p>');
    await writeFile(join(base, 'site', 'assets', 'a.js'), 'ok');
    await writeFile(join(base, 'secret.txt'), 'secret');
    await mkdir(join(base, 'data'));
    await writeFile(join(base, 'data', 'relay.sqlite'), 'rows');
  });

  afterEach(async () => {
    await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
    server = null;
    await rm(base, { recursive: true, force: true });
  });

  /** Serves `files` on port 0 the way the HTTP API does, and GETs raw `path`. */
  async function get(files: StaticFiles, path: string): Promise<{ status: number; body: string }> {
    server ??= createServer((req, res) => {
      let segments: readonly string[];
      try {
        segments = parseRequestUrl(req.url).segments;
      } catch {
        res.writeHead(400).end();
        return;
      }
      void files.serve(req, res, segments).then((served) => {
        if (!served) res.writeHead(404).end('not found');
      });
    });
    if (!server.listening) await new Promise<void>((done) => server?.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text() };
  }

  it('refuses an empty root instead of serving the working directory', () => {
    const error = (() => {
      try {
        new StaticFiles({ root: '' });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(isSyncError(error, 'BadRequest')).toBe(true);
  });

  it('refuses a root that equals or contains the data directory', () => {
    expect(staticRootProblem(base, [join(base, 'data')])).toMatch(/contains the data directory/);
    expect(staticRootProblem(join(base, 'data'), [join(base, 'data')])).toMatch(
      /contains the data directory/,
    );
    expect(staticRootProblem(join(base, 'site'), [join(base, 'data')])).toBeNull();
    // A data dir that does not exist yet is still recognised inside the root.
    expect(staticRootProblem(base, [join(base, 'later', 'data')])).toMatch(/contains/);
    expect(() => new StaticFiles({ root: base, forbidden: [join(base, 'data')] })).toThrow(/data directory/);
  });

  it('serves files and the SPA fallback, and nothing outside its directory', async () => {
    await symlink(join(base, 'secret.txt'), join(base, 'site', 'link.txt'));
    await symlink(base, join(base, 'site', 'up'));
    const files = new StaticFiles({ root: join(base, 'site') });
    expect(await get(files, '/assets/a.js')).toEqual({ status: 200, body: 'ok' });
    expect(await get(files, '/some/route')).toEqual({ status: 200, body: '<p>app</p>' });
    for (const path of [
      '/../secret.txt',
      '/%2e%2e/secret.txt',
      '/assets/%2E%2E/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/..%5csecret.txt',
      '/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/link.txt',
      '/up/secret.txt',
      '/up/data/relay.sqlite',
      '/secret.txt%00.html',
    ]) {
      const { body } = await get(files, path);
      expect(body, path).not.toContain('secret');
      expect(body, path).not.toContain('rows');
    }
  });
});
