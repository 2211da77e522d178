import WebSocket from 'ws';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';

/** A stock y-websocket client: its document and its provider. */
export interface StockClient {
  readonly doc: Y.Doc;
  readonly provider: WebsocketProvider;
}

/**
 * A stock y-websocket client of `name` on the relay at `wsUrl`, through its `/sync` endpoint
 * with `key`, without BroadcastChannel (an edit must travel through the relay). Its provider is
 * destroyed by `cleanups`.
 */
export function openStockClient(
  wsUrl: string,
  name: string,
  key: string,
  cleanups: Array<() => Promise<void> | void>,
): StockClient {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(`${wsUrl}/sync`, name, doc, {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    params: { key },
    disableBc: true,
  });
  cleanups.push(() => provider.destroy());
  return { doc, provider };
}

/** Resolves once the provider has synced with the relay. */
export function synced(provider: WebsocketProvider): Promise<void> {
  if (provider.synced) return Promise.resolve();
  return new Promise((resolve) => provider.once('sync', () => resolve()));
}

/** Resolves once `predicate(doc)` holds; rejects after `ms`, saying what its text `t` reads. */
export function until(doc: Y.Doc, predicate: (doc: Y.Doc) => boolean, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      doc.off('update', check);
      reject(new Error(`not reached in ${ms} ms; the doc reads "${doc.getText('t').toString()}"`));
    }, ms);
    const check = (): void => {
      if (!predicate(doc)) return;
      clearTimeout(timer);
      doc.off('update', check);
      resolve();
    };
    doc.on('update', check);
    check();
  });
}
