import { WebSocket } from 'ws';
import { WebsocketProvider } from 'y-websocket';
import type * as Y from 'yjs';

// y-websocket adds one `exit` listener on `process` per provider (to clear its awareness state
// when the process ends). A chaos run keeps hundreds of stock providers in one process, so
// Node warned (MaxListenersExceededWarning) from the eleventh on. One hook runs them all.

const handlers = new Set<() => void>();
let installed = false;

/** Moves `provider`'s own `exit` listener into the one shared hook (and out again on destroy). */
export function shareExitHook(provider: WebsocketProvider): WebsocketProvider {
  const handler = (provider as unknown as { _exitHandler?: () => void })._exitHandler;
  if (handler === undefined) return provider;
  process.off('exit', handler);
  handlers.add(handler);
  if (!installed) {
    installed = true;
    process.on('exit', () => {
      for (const run of handlers) run();
    });
  }
  const destroy = provider.destroy.bind(provider);
  provider.destroy = () => {
    handlers.delete(handler);
    destroy();
  };
  return provider;
}

/** Options of {@link stockProvider}. */
export interface StockProviderOptions {
  /** The API key the provider connects with. */
  readonly key: string;
  /** The WebSocket class it uses (a recording one, say); `ws` by default. */
  readonly WebSocketClass?: typeof WebSocket | undefined;
  /** Whether it connects at once (default true). */
  readonly connect?: boolean;
}

/**
 * A stock y-websocket provider of `name` on the relay at `httpUrl`, as every chaos scenario opens
 * one: through the relay's `/sync` endpoint, no BroadcastChannel (an edit must travel through the
 * relay), a short backoff, and its exit listener in the shared hook.
 */
export function stockProvider(httpUrl: string, name: string, doc: Y.Doc, options: StockProviderOptions) {
  return shareExitHook(
    new WebsocketProvider(`${httpUrl.replace(/^http/, 'ws')}/sync`, name, doc, {
      WebSocketPolyfill: (options.WebSocketClass ?? WebSocket) as unknown as typeof globalThis.WebSocket,
      params: { key: options.key },
      disableBc: true,
      maxBackoffTime: 1000,
      connect: options.connect ?? true,
    }),
  );
}
