import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Relay } from '@scopesync/relay';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.ts';

// `start` in process: what a relay serves at `/` under each static setting.

describe('scopesync-relay start, static files', () => {
  let base: string;

  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'scopesync-cli-static-'));
    await mkdir(join(base, 'site'));
    await writeFile(join(base, 'site', 'index.html'), '<p>site</p>');
    await writeFile(join(base, 'package.json'), '{"name": "the working directory"}');
  });

  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  /** Starts the relay with `args` and `env`, fetches `path`, stops it; or the exit code and stderr when it does not start. */
  async function startAndGet(
    args: readonly string[],
    env: Record<string, string>,
    path: string,
  ): Promise<{ code: number; status?: number; body?: string; err: string }> {
    const err: string[] = [];
    let answer: { status: number; body: string } | undefined;
    let done: Promise<void> = Promise.resolve();
    const code = await runCli(['start', '--port', '0', '--data-dir', join(base, 'data'), ...args], {
      out: () => undefined,
      err: (line) => err.push(line),
      env,
      onStarted: (relay: Relay) => {
        done = (async () => {
          const res = await fetch(`${relay.url}${path}`);
          answer = { status: res.status, body: await res.text() };
          await relay.close();
        })();
      },
    });
    await done;
    return { code, ...answer, err: err.join('\n') };
  }

  it('serves nothing at / when started bare, or with an empty STATIC_DIR', async () => {
    const cwd = process.cwd();
    process.chdir(base);
    try {
      expect(await startAndGet([], {}, '/package.json')).toMatchObject({ code: 0, status: 404 });
      expect(await startAndGet([], { STATIC_DIR: '' }, '/package.json')).toMatchObject({
        code: 0,
        status: 404,
      });
    } finally {
      process.chdir(cwd);
    }
  });

  it('refuses an empty --static-dir and one holding the data dir: one line, exit 2', async () => {
    const empty = await startAndGet(['--static-dir', ''], {}, '/');
    expect(empty.code).toBe(2);
    expect(empty.err.split('\n')).toHaveLength(1);
    const holding = await startAndGet(['--static-dir', base], {}, '/');
    expect(holding.code).toBe(2);
    expect(holding.err).toMatch(/data directory/);
  });

  it('serves --static-dir, and nothing with --no-static', async () => {
    const site = join(base, 'site');
    expect(await startAndGet(['--static-dir', site], {}, '/')).toMatchObject({
      status: 200,
      body: '<p>site</p>',
    });
    expect(await startAndGet(['--no-static'], { STATIC_DIR: site }, '/')).toMatchObject({
      code: 0,
      status: 404,
    });
  });
});
