import { connect, createServer, type Server, type Socket } from 'node:net';
import type { SeededRandom } from '@scopesync/testing';

// A TCP load balancer with faults, between simulated clients and a group of relays: every new
// connection goes to a live relay (so a killed relay's clients reconnect to another one), and
// the chaos scenarios make it delay chunks, cut connections mid-frame and freeze them
// (half-open: nothing passes, neither side is told).

/** Faults applied to every chunk that passes. */
export interface ProxyFaults {
  /** Each chunk waits a random 0…delayMaxMs before it is forwarded (order is kept). */
  readonly delayMaxMs: number;
}

/** What the proxy did, for the run's figures. */
export interface ProxyStats {
  connections: number;
  cuts: number;
  midFrameCuts: number;
  frozen: number;
  /** Frozen WebSocket connections whose relay side closed while frozen: the relay's heartbeat found them. */
  halfOpenDetected: number;
  /** Frozen WebSocket connections the relay had not dropped when the freeze's bound ran out: must stay 0. */
  halfOpenMissed: number;
  refused: number;
}

/** One client connection and its upstream. */
interface Pipe {
  readonly client: Socket;
  readonly upstream: Socket;
  /** Cut on the next chunk: half of it passes, then both sides are destroyed. */
  cutting: boolean;
  frozen: boolean;
  /** The client asked for a WebSocket upgrade: the relay pings it. */
  websocket: boolean;
  /** The request line and upstream, for a report about this connection. */
  label: string;
  /** Bytes each way before the freeze (a connection frozen before its upgrade was answered is not yet a WebSocket). */
  readonly bytes: [number, number];
  /** Per direction: when the previous chunk leaves (keeps order under random delays). */
  readonly lastOut: [number, number];
}

/** A TCP proxy on 127.0.0.1 that balances over `upstreams()` (host:port of live relays). */
export class ChaosProxy {
  readonly stats: ProxyStats = {
    connections: 0,
    cuts: 0,
    midFrameCuts: 0,
    frozen: 0,
    halfOpenDetected: 0,
    halfOpenMissed: 0,
    refused: 0,
  };
  /** The connections behind {@link ProxyStats.halfOpenMissed}. */
  readonly missed: string[] = [];
  readonly #server: Server;
  readonly #pipes = new Set<Pipe>();
  readonly #upstreams: () => readonly string[];
  readonly #random: SeededRandom;
  #faults: ProxyFaults = { delayMaxMs: 0 };
  #port = 0;

  constructor(upstreams: () => readonly string[], random: SeededRandom) {
    this.#upstreams = upstreams;
    this.#random = random;
    this.#server = createServer((client) => this.#accept(client));
  }

  /** Listens on a free port; resolves with `http://127.0.0.1:<port>`. */
  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
    this.#port = address.port;
    return this.url;
  }

  /** `http://127.0.0.1:<port>` of the proxy. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Open connections. */
  get open(): number {
    return this.#pipes.size;
  }

  /** Sets the faults applied from now on. */
  setFaults(faults: ProxyFaults): void {
    this.#faults = faults;
  }

  /**
   * Cuts a random `fraction` (at least one) of the open connections: mid-frame when traffic
   * flows, else after a moment.
   */
  cut(fraction: number): number {
    const candidates = [...this.#pipes].filter((p) => !p.frozen && !p.cutting);
    const chosen = candidates.filter(() => this.#random.next() < fraction);
    if (chosen.length === 0 && candidates.length > 0) chosen.push(this.#random.pick(candidates));
    for (const pipe of chosen) {
      pipe.cutting = true;
      // Idle connections are cut shortly even if no chunk comes to split.
      setTimeout(() => this.#destroy(pipe, 'cut'), 200).unref();
    }
    return chosen.length;
  }

  /**
   * Freezes a random `fraction` (at least one) of the open WebSocket connections: nothing passes
   * either way and neither side is told (a half-open connection). The relay's heartbeat must
   * drop its side; once it does, the client side is reset too (the path came back and the
   * stale connection is refused), so the client reconnects. A freeze the relay has not noticed
   * after `boundMs` counts as missed.
   */
  freeze(fraction: number, boundMs: number): number {
    const candidates = [...this.#pipes].filter((p) => p.websocket && !p.frozen && !p.cutting);
    const chosen = candidates.filter(() => this.#random.next() < fraction);
    if (chosen.length === 0 && candidates.length > 0) chosen.push(this.#random.pick(candidates));
    for (const pipe of chosen) {
      pipe.frozen = true;
      this.stats.frozen += 1;
      setTimeout(() => {
        if (!this.#pipes.has(pipe)) return;
        this.stats.halfOpenMissed += 1;
        this.missed.push(
          `${pipe.label} (bytes before the freeze: ${pipe.bytes[0]} in, ${pipe.bytes[1]} out)`,
        );
        this.#destroy(pipe, 'thaw');
      }, boundMs).unref();
    }
    return chosen.length;
  }

  /** Stops accepting, destroys every connection. */
  async close(): Promise<void> {
    for (const pipe of this.#pipes) this.#destroy(pipe, 'close');
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    const live = this.#upstreams();
    if (live.length === 0) {
      this.stats.refused += 1;
      client.destroy();
      return;
    }
    const [host, port] = (this.#random.pick(live) as string).split(':') as [string, string];
    const upstream = connect(Number(port), host);
    const pipe: Pipe = {
      client,
      upstream,
      cutting: false,
      frozen: false,
      websocket: false,
      label: '',
      bytes: [0, 0],
      lastOut: [0, 0],
    };
    // A WebSocket once the relay answered the upgrade (101): only then does its heartbeat run.
    // (A request frozen before it reached the relay is an idle HTTP connection, not a socket.)
    let asked = false;
    client.once('data', (chunk: Buffer) => {
      const head = chunk.toString('latin1');
      asked = /^GET \/sync[^\r]*\r\n[\s\S]*upgrade: websocket/i.test(head);
      pipe.label = `${head.split('\r\n')[0]?.replace(/key=[^& ]+/, 'key=…')} → ${host}:${port}`;
    });
    upstream.once('data', (chunk: Buffer) => {
      pipe.websocket = asked && !pipe.frozen && chunk.toString('latin1').startsWith('HTTP/1.1 101');
    });
    this.#pipes.add(pipe);
    this.stats.connections += 1;
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.#forward(pipe, client, upstream, 0);
    this.#forward(pipe, upstream, client, 1);
    client.on('error', () => this.#destroy(pipe, 'error'));
    upstream.on('error', () => this.#destroy(pipe, 'error'));
    client.on('close', () => this.#destroy(pipe, 'client closed'));
    upstream.on('close', () => {
      // A frozen connection whose relay gave up on it: the relay's heartbeat noticed the silence.
      if (pipe.frozen && this.#pipes.has(pipe)) this.stats.halfOpenDetected += 1;
      this.#destroy(pipe, 'upstream closed');
    });
  }

  #forward(pipe: Pipe, from: Socket, to: Socket, direction: 0 | 1): void {
    from.on('data', (chunk: Buffer) => {
      if (pipe.frozen) return; // into the void
      pipe.bytes[direction] += chunk.length;
      if (pipe.cutting) {
        const part = chunk.subarray(0, Math.max(1, chunk.length >> 1));
        if (part.length < chunk.length) this.stats.midFrameCuts += 1;
        if (!to.destroyed) to.write(part);
        this.#destroy(pipe, 'cut');
        return;
      }
      const delay = this.#faults.delayMaxMs > 0 ? this.#random.int(0, this.#faults.delayMaxMs) : 0;
      const now = Date.now();
      const at = Math.max(now + delay, pipe.lastOut[direction]);
      pipe.lastOut[direction] = at;
      if (at <= now) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      setTimeout(() => {
        if (!pipe.frozen && !to.destroyed) to.write(chunk);
      }, at - now).unref();
    });
  }

  #destroy(pipe: Pipe, why: 'cut' | 'thaw' | 'error' | 'client closed' | 'upstream closed' | 'close'): void {
    if (!this.#pipes.delete(pipe)) return;
    if (why === 'cut') this.stats.cuts += 1;
    pipe.client.destroy();
    pipe.upstream.destroy();
  }
}
