import { randomBytes } from 'node:crypto';
import { SyncError } from '@scopesync/core';
import type { ClusterTransport } from './cluster-transport.ts';
import { newRedisClient, type RedisClient } from './redis-client.ts';

/** Options of {@link RedisTransport.connect}. */
export interface RedisTransportOptions {
  /** `redis://host:port` (or `rediss://`, with credentials if any). */
  readonly url: string;
  /** Prefix of the pub/sub channel, so several deployments (or test files) can share a Redis. Default `scopesync`. */
  readonly prefix?: string | undefined;
  /** This relay's id; default: random. */
  readonly relayId?: string | undefined;
  /** How long the first connection may take, in ms. Default 5000. */
  readonly connectTimeoutMs?: number | undefined;
  /** Where connection trouble is reported (once per outage). */
  readonly log?:
    | ((level: 'warn' | 'error', message: string, context?: Record<string, unknown>) => void)
    | undefined;
}

type Client = RedisClient;

/**
 * A {@link ClusterTransport} over Redis pub/sub: one channel, a dedicated subscriber
 * connection, messages prefixed with the sender's id so a relay tells its own echo (given to
 * `onEcho` handlers, never to `onMessage` ones) from the others' messages. Redis
 * only accelerates: a publish while Redis is away is dropped (no offline queue that could grow
 * without bound), and after a reconnect the relays catch up from the store.
 */
export class RedisTransport implements ClusterTransport {
  readonly relayId: string;
  readonly #channel: string;
  readonly #publisher: Client;
  readonly #subscriber: Client;
  readonly #log: NonNullable<RedisTransportOptions['log']>;
  readonly #handlers: Array<(message: Uint8Array) => void> = [];
  readonly #echoes: Array<(message: Uint8Array) => void> = [];
  readonly #losses: Array<() => void> = [];
  readonly #reconnects: Array<() => void> = [];
  readonly #prefix: Buffer;
  #down = false;
  #closed = false;

  private constructor(options: RedisTransportOptions, publisher: Client, subscriber: Client) {
    this.relayId = options.relayId ?? randomBytes(8).toString('hex');
    this.#channel = `${options.prefix ?? 'scopesync'}:events`;
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    this.#log = options.log ?? (() => undefined);
    const id = Buffer.from(this.relayId, 'utf8');
    this.#prefix = Buffer.concat([Buffer.from([id.length]), id]);
  }

  /**
   * Connects the publisher and the subscriber. Rejects with SyncError('Unavailable') and one
   * clear line when Redis cannot be reached in time.
   */
  static async connect(options: RedisTransportOptions): Promise<RedisTransport> {
    const relayId = options.relayId ?? randomBytes(8).toString('hex');
    // Named, so an operator (or a test) can tell the connections apart in CLIENT LIST.
    const name = `scopesync-${options.prefix ?? 'scopesync'}-${relayId}`;
    const publisher = await newRedisClient(options.url, `${name}-pub`);
    const subscriber = await newRedisClient(options.url, `${name}-sub`);
    const transport = new RedisTransport({ ...options, relayId }, publisher, subscriber);
    const timeoutMs = options.connectTimeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all([publisher.connect(), subscriber.connect()]),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      await subscriber.subscribe(transport.#channel, (message) => transport.#receive(message), true);
    } catch (error) {
      publisher.destroy();
      subscriber.destroy();
      const reason = error instanceof Error ? error.message : String(error);
      throw new SyncError('Unavailable', `cannot reach Redis at ${redact(options.url)}: ${reason}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
    }
    transport.#watch();
    return transport;
  }

  async send(message: Uint8Array): Promise<boolean> {
    if (this.#closed) return false;
    try {
      await this.#publisher.publish(Buffer.from(this.#channel), Buffer.concat([this.#prefix, message]));
      return true;
    } catch (error) {
      // Best effort: the other relays catch up from the store after the outage.
      this.#outage(error);
      return false;
    }
  }

  onMessage(handler: (message: Uint8Array) => void): void {
    this.#handlers.push(handler);
  }

  onReconnect(handler: () => void): void {
    this.#reconnects.push(handler);
  }

  onEcho(handler: (message: Uint8Array) => void): void {
    this.#echoes.push(handler);
  }

  onLoss(handler: () => void): void {
    this.#losses.push(handler);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([this.#subscriber.close(), this.#publisher.close()]);
  }

  #receive(message: Buffer): void {
    const idLength = message[0];
    if (idLength === undefined || message.length < 1 + idLength) return;
    const own = message.subarray(0, 1 + idLength).equals(this.#prefix);
    const body = new Uint8Array(
      message.buffer,
      message.byteOffset + 1 + idLength,
      message.length - 1 - idLength,
    );
    for (const handler of own ? this.#echoes : this.#handlers) handler(body);
  }

  #watch(): void {
    for (const client of [this.#publisher, this.#subscriber]) {
      client.on('error', (error: unknown) => this.#outage(error));
      client.on('ready', () => {
        if (!this.#down || this.#closed) return;
        this.#down = false;
        this.#log('warn', 'Redis is reachable again; catching up from the store');
        for (const handler of this.#reconnects) handler();
      });
    }
    // A killed subscriber connection reconnects (and re-subscribes) on its own; messages
    // published meanwhile are lost, so it counts as an outage too.
    this.#subscriber.on('end', () => this.#outage(new Error('subscriber connection ended')));
    // Every sign that the subscription dropped, each time (not once per outage like the log):
    // whoever trusts what it heard must stop at once.
    for (const event of ['end', 'error', 'reconnecting']) {
      this.#subscriber.on(event, () => {
        if (!this.#closed) for (const handler of this.#losses) handler();
      });
    }
  }

  #outage(error: unknown): void {
    if (this.#closed || this.#down) return;
    this.#down = true;
    this.#log('warn', 'Redis connection lost; live delivery between relays is paused', { error });
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//…@');
}
