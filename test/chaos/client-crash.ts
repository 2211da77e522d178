import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { call } from '../support/http-client.ts';
import type { RelayGroup } from './relay-groups.ts';
import { servedItems } from './relay-reads.ts';
import type { SoakAddon, SoakContext } from './soak.ts';

// Client crash, alongside the soak: a Node client on SQLite appends tokens and is `kill -9`'d
// mid-write, again and again (through the same faulty proxy, while relays die too). Each
// restart opens the same SQLite file; at the end a last run drains the outbox. Every token a
// run reported durable must be in what the relay serves exactly once, and no token twice.

/** How many crashes per group. */
export interface CrashOptions {
  readonly crashes: number;
  /** Tokens a run writes at most before it is killed (it is killed earlier, mid-stream). */
  readonly tokensPerRun: number;
}

interface ChildRun {
  readonly process: ChildProcess;
  readonly events: Array<Record<string, unknown>>;
  readonly exited: Promise<void>;
  next(
    match: (event: Record<string, unknown>) => boolean,
    timeoutMs: number,
  ): Promise<Record<string, unknown>>;
}

function spawnChild(args: string[]): ChildRun {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=source', join(import.meta.dirname, 'crash-child.ts'), ...args],
    { cwd: import.meta.dirname, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const events: Array<Record<string, unknown>> = [];
  const wakers = new Set<() => void>();
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    events.push(JSON.parse(line) as Record<string, unknown>);
    for (const wake of [...wakers]) wake();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    for (const wake of [...wakers]) wake();
  });
  return {
    process: child,
    events,
    exited,
    next: (match, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          wakers.delete(check);
          reject(
            new Error(`the crash child said nothing expected within ${timeoutMs} ms: ${stderr.slice(-500)}`),
          );
        }, timeoutMs);
        const check = (): void => {
          const found = events.find(match);
          if (found) {
            clearTimeout(timer);
            wakers.delete(check);
            resolve(found);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            wakers.delete(check);
            reject(
              new Error(
                `the crash child exited (${child.exitCode ?? child.signalCode}): ${stderr.slice(-500)}`,
              ),
            );
          }
        };
        wakers.add(check);
        check();
      }),
  };
}

/** The client-crash add-on of the soak: `crashes` SIGKILLs mid-write per group. */
export function clientCrash(options: CrashOptions): SoakAddon {
  interface State {
    readonly group: RelayGroup;
    readonly dir: string;
    readonly key: string;
    readonly doc: string;
    /** Tokens a run reported durable before it was killed. */
    readonly durable: Set<string>;
    runs: number;
  }
  const states: State[] = [];
  let crashes = 0;
  const argsOf = (s: State) => [
    join(s.dir, 'client.sqlite'),
    s.group.url,
    s.key,
    s.doc,
    `k${s.runs}`,
    String(options.tokensPerRun),
  ];
  return {
    name: 'client-crash',
    async prepare(ctx: SoakContext) {
      for (const group of ctx.groups) {
        const answer = await call(group.url, 'POST', '/keys', { body: { device_name: 'crash' } });
        if (answer.status !== 200) throw new Error(`registering the crash client: ${answer.status}`);
        states.push({
          group,
          dir: mkdtempSync(join(tmpdir(), 'scopesync-chaos-crash-')),
          key: answer.json.key as string,
          doc: `USER_PUBLIC/${answer.json.user_id as string}/crash`,
          durable: new Set(),
          runs: 0,
        });
      }
    },
    async run(ctx: SoakContext) {
      const r = ctx.random;
      // The crashes go round the groups: a run with one crash crashes on the cluster.
      for (let i = 0; i < options.crashes && ctx.running(); i++) {
        {
          const s = states[i % states.length] as State;
          s.runs += 1;
          const child = spawnChild(argsOf(s));
          try {
            await child.next((e) => e.event === 'loaded', 60_000);
            // Killed after a random number of durable writes: mid-stream, with sends in flight.
            const after = r.int(1, Math.max(1, options.tokensPerRun >> 1));
            await child.next(() => child.events.filter((e) => e.event === 'written').length >= after, 60_000);
          } catch (error) {
            ctx.log(`client-crash: a run ended early: ${String(error)}`);
          }
          child.process.kill('SIGKILL');
          await child.exited;
          for (const e of child.events) if (e.event === 'written') s.durable.add(e.token as string);
          crashes += 1;
        }
      }
    },
    async finish() {
      const violations: string[] = [];
      let durable = 0;
      for (const s of states) {
        if (s.runs === 0) continue;
        // A last run, never killed: it loads the outbox and drains it (count 0: no new writes).
        const child = spawnChild([...argsOf(s).slice(0, 5), '0']);
        try {
          const loaded = await child.next((e) => e.event === 'loaded', 60_000);
          const local = loaded.items as string[];
          for (const token of s.durable)
            if (!local.includes(token))
              violations.push(`${s.group.name}: ${token} was durable before the kill, gone after`);
          const acked = await child.next((e) => e.event === 'acked', 120_000);
          const synced = acked.items as string[];
          const checker = await call(s.group.url, 'POST', '/keys', { body: { device_name: 'crash-reader' } });
          const served = await servedItems(s.group.url, checker.json.key as string, s.doc);
          for (const token of s.durable) {
            const n = served.filter((x) => x === token).length;
            if (n !== 1) violations.push(`${s.group.name}: ${token} is served ${n} times`);
          }
          if (new Set(served).size !== served.length)
            violations.push(`${s.group.name}: a token is served twice`);
          if (JSON.stringify(served) !== JSON.stringify(synced))
            violations.push(
              `${s.group.name}: the restarted client holds ${synced.length} items, the relay ${served.length}`,
            );
          durable += s.durable.size;
        } catch (error) {
          violations.push(`${s.group.name}: ${String(error)}`);
        } finally {
          child.process.kill('SIGKILL');
          await child.exited;
          rmSync(s.dir, { recursive: true, force: true });
        }
      }
      return { figures: { crashes, durableBeforeKill: durable }, violations };
    },
  };
}
