import type { WebsocketProvider } from 'y-websocket';

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
