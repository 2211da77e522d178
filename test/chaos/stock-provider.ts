import { WebSocket } from 'ws';
import { WebsocketProvider } from 'y-websocket';
import type * as Y from 'yjs';
import { shareExitHook } from './exit-hook.ts';

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
