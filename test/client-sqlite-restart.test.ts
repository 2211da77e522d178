import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createClient, memoryClientStore } from '@scopesync/client';
import { createRelay, type Relay } from '@scopesync/relay';
import { afterEach, expect, it } from 'vitest';
import { WebSocket } from 'ws';

/*
 * A Node client with the SQLite store makes edits while the relay is down, is killed with
 * SIGKILL (no chance to flush or close anything), and delivers those edits after a restart.
 */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A child process speaking JSON lines. */
class Child {
  readonly process: ChildProcess;
  readonly #lines: string[] = [];
  readonly #waiters: ((line: string) => void)[] = [];
  #stderr = '';

  constructor(args: string[]) {
    this.process = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--conditions=source',
        join(import.meta.dirname, 'client-sqlite-child.ts'),
        ...args,
      ],
      {
        cwd: import.meta.dirname,
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    this.process.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr += chunk.toString();
    });
    createInterface({ input: this.process.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const waiter = this.#waiters.shift();
      if (waiter) waiter(line);
      else this.#lines.push(line);
    });
  }

  /** The next message the child prints. */
  async next(): Promise<Record<string, unknown>> {
    const line =
      this.#lines.shift() ??
      (await new Promise<string>((resolve, reject) => {
        this.#waiters.push(resolve);
        this.process.once('exit', (code) => reject(new Error(`child exited (${code}): ${this.#stderr}`)));
      }));
    return JSON.parse(line) as Record<string, unknown>;
  }

  send(command: Record<string, unknown>): void {
    this.process.stdin?.write(`${JSON.stringify(command)}\n`);
  }

  async kill(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((resolve) => this.process.once('exit', resolve));
    this.process.kill('SIGKILL');
    await exited;
  }
}

async function startRelay(dataDir: string): Promise<{ relay: Relay; url: string }> {
  const relay = createRelay({ dataDir, port: 0, rateLimit: false, log: () => undefined });
  const { url } = await relay.listen();
  return { relay, url };
}

it('a killed Node client with the SQLite store delivers its offline edits after a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'scopesync-kill-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const relayDir = join(dir, 'relay');
  const clientDb = join(dir, 'client.sqlite');

  let running = await startRelay(relayDir);
  const registered = (await (
    await fetch(`${running.url}/keys`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"device_name":"node"}',
    })
  ).json()) as { key: string; user_id: string };
  const docName = `USER_PUBLIC/${registered.user_id}/crash-test`;

  const first = new Child([clientDb, running.url, registered.key, docName]);
  cleanups.push(() => first.kill());
  expect(await first.next()).toMatchObject({ event: 'loaded', pending: 0 });
  first.send({ op: 'synced' });
  expect(await first.next()).toMatchObject({ event: 'synced' });

  await running.relay.close();
  first.send({ op: 'write', text: 'alpha ' });
  expect(await first.next()).toMatchObject({ event: 'written', pending: 1 });
  first.send({ op: 'write', text: 'beta' });
  expect(await first.next()).toMatchObject({ event: 'written', pending: 2 });
  await first.kill();

  running = await startRelay(relayDir);
  cleanups.push(() => running.relay.close());
  const second = new Child([clientDb, running.url, registered.key, docName]);
  cleanups.push(() => second.kill());
  expect(await second.next()).toMatchObject({ event: 'loaded', pending: 2, text: 'alpha beta' });
  second.send({ op: 'acked' });
  expect(await second.next()).toMatchObject({ event: 'acked', text: 'alpha beta' });

  // Another device sees exactly the offline edits: delivered, and delivered once.
  const reader = await createClient({
    url: running.url,
    apiKey: registered.key,
    WebSocket,
    store: memoryClientStore(),
  });
  cleanups.push(() => reader.close());
  const doc = reader.doc(docName);
  await doc.whenSynced;
  expect(doc.doc.getText('t').toString()).toBe('alpha beta');
});
