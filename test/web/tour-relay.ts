import { createRelay, type Relay } from '@scopesync/relay';

/**
 * A real relay for the browser tests: SQLite in `dataDir`, serving the built tour from
 * `staticDir`. It can be stopped and started again on the same port with the same data —
 * the relay going down and coming back, as the offline step needs.
 */
export class TourRelay {
  readonly #dataDir: string;
  readonly #staticDir: string;
  #relay: Relay | undefined;
  #port = 0;

  constructor(dataDir: string, staticDir: string) {
    this.#dataDir = dataDir;
    this.#staticDir = staticDir;
  }

  /** The running relay; throws while it is stopped. */
  get relay(): Relay {
    if (!this.#relay) throw new Error('the relay is stopped');
    return this.#relay;
  }

  /** `http://127.0.0.1:<port>`, stable across restarts. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Starts it: on a free port the first time, on the same port after a stop. */
  async start(): Promise<void> {
    if (this.#relay) return;
    const relay = createRelay({
      port: this.#port,
      dataDir: this.#dataDir,
      staticDir: this.#staticDir,
      rateLimit: false,
      // Quiet: tests report through assertions, not relay logs.
      log: () => undefined,
    });
    const address = await relay.listen();
    this.#port = address.port;
    this.#relay = relay;
  }

  /** Stops it (closing every socket) and keeps the data and the port for {@link start}. */
  async stop(): Promise<void> {
    const relay = this.#relay;
    this.#relay = undefined;
    await relay?.close();
  }
}
