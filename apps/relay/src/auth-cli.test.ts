import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Relay } from '@scopesync/relay';
import { SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.ts';

// The auth settings of `start` and the `issue-key` command, in process on a real data dir.

const SECRET = 'the app server and the relay share this secret';

describe('scopesync-relay auth settings and issue-key', () => {
  let base: string;
  let dataDir: string;

  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'scopesync-cli-auth-'));
    dataDir = join(base, 'data');
    await writeFile(join(base, 'secret'), `${SECRET}\n`);
  });

  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  /** Runs a command; `whileRunning` gets the started relay (for `start`), which is then closed. */
  async function run(
    args: readonly string[],
    whileRunning?: (relay: Relay) => Promise<void>,
  ): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    let done: Promise<void> = Promise.resolve();
    const code = await runCli(args, {
      out: (line) => out.push(line),
      err: (line) => err.push(line),
      env: {},
      onStarted: (relay) => {
        done = (async () => {
          try {
            await whileRunning?.(relay);
          } finally {
            await relay.close();
          }
        })();
      },
    });
    await done;
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  it('start --registration closed --jwt-…: tokens sign in, self-registration is refused, issue-key gives a key', async () => {
    const admin = await run(['admin', 'create', '--device-name', 'ops', '--data-dir', dataDir]);
    const { user_id: userId } = JSON.parse(admin.out) as { user_id: string };
    const issued = await run([
      'issue-key',
      '--user',
      userId,
      '--device-name',
      'laptop',
      '--data-dir',
      dataDir,
    ]);
    expect(issued.code).toBe(0);
    const { key, user_id } = JSON.parse(issued.out) as { key: string; user_id: string };
    expect(user_id).toBe(userId);

    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('42')
      .setIssuer('https://app.example')
      .setAudience('relay')
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(SECRET));
    const answers: Record<string, number> = {};
    const started = await run(
      [
        'start',
        '--port',
        '0',
        '--data-dir',
        dataDir,
        '--registration',
        'closed',
        '--jwt-issuer',
        'https://app.example',
        '--jwt-audience',
        'relay',
        '--jwt-secret-file',
        join(base, 'secret'),
      ],
      async (relay) => {
        const get = async (path: string, init: RequestInit = {}) =>
          (await fetch(`${relay.url}${path}`, init)).status;
        answers.token = await get('/keys/validate', { headers: { authorization: `Bearer ${token}` } });
        answers.issuedKey = await get('/keys/validate', { headers: { 'x-api-key': key } });
        answers.register = await get('/keys', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ device_name: 'stranger' }),
        });
      },
    );
    expect(started.code).toBe(0);
    expect(answers).toEqual({ token: 200, issuedKey: 200, register: 403 });
  });

  it('stops with exit 2 on an incomplete JWT set-up, and issue-key with exit 1 for an unknown user', async () => {
    const noAudience = await run(['start', '--port', '0', '--data-dir', dataDir, '--jwt-issuer', 'x']);
    expect(noAudience).toMatchObject({ code: 2 });
    expect(noAudience.err).toContain('--jwt-audience');
    await writeFile(join(base, 'short'), 'too short');
    const shortSecret = await run([
      'start',
      '--data-dir',
      dataDir,
      '--jwt-issuer',
      'x',
      '--jwt-audience',
      'y',
      '--jwt-secret-file',
      join(base, 'short'),
    ]);
    expect(shortSecret.code).toBe(2);
    expect(shortSecret.err).toContain('at least 32 bytes');
    expect((await run(['start', '--data-dir', dataDir, '--registration', 'maybe'])).code).toBe(2);
    await run(['admin', 'create', '--device-name', 'ops', '--data-dir', dataDir]);
    const unknown = await run(['issue-key', '--user', 'user_0000000000000000', '--data-dir', dataDir]);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain('no user user_0000000000000000');
    expect((await run(['issue-key', '--data-dir', dataDir])).code).toBe(2);
  });
});
