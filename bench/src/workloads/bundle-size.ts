import { bundleForBrowser } from '../browser-bundle.ts';
import { forEachPeer, row, type Workload } from '../driver/workload.ts';
import type { MetricRow } from '../report.ts';
import type { PeerName } from '../servers/peer.ts';

/**
 * The smallest browser app each peer's client makes possible: a Yjs document synced with a
 * server and kept offline in IndexedDB (Hocuspocus's provider has no offline store: it syncs
 * only, as the peers are usually deployed). What an app developer would write first.
 */
const ENTRIES: Record<PeerName, string> = {
  scopesync: `
    import { createClient } from '@scopesync/client';
    const client = await createClient({ url: location.origin, deviceName: 'laptop' });
    const todo = client.doc('PUBLIC_RW/_/todo');
    await todo.transact((doc) => doc.getArray('items').push(['write the README']));
  `,
  'y-websocket': `
    import * as Y from 'yjs';
    import { WebsocketProvider } from 'y-websocket';
    import { IndexeddbPersistence } from 'y-indexeddb';
    const doc = new Y.Doc();
    new IndexeddbPersistence('todo', doc);
    new WebsocketProvider(location.origin.replace(/^http/, 'ws'), 'todo', doc);
    doc.getArray('items').push(['write the README']);
  `,
  hocuspocus: `
    import { HocuspocusProvider } from '@hocuspocus/provider';
    const provider = new HocuspocusProvider({ url: location.origin.replace(/^http/, 'ws'), name: 'todo' });
    provider.document.getArray('items').push(['write the README']);
  `,
};

const kB = (bytes: number): number => bytes / 1000;

/**
 * Workload 9: the minified and gzipped browser bundle of each peer's client, same bundler
 * (esbuild), same settings, in one run. No server is started.
 */
export const bundleSize: Workload = {
  id: 'bundle-size',
  title: '9. Browser bundle',
  async run(ctx) {
    const outcomes = await forEachPeer(ctx, 'bundle size', (name) => bundleForBrowser(ENTRIES[name]));
    const rows: MetricRow[] = [
      row(outcomes, 'loaded at start, min + gzip', 'kB', 'lower', (m) => kB(m.initial.gzipBytes)),
      row(outcomes, 'loaded at start, minified', 'kB', 'lower', (m) => kB(m.initial.minifiedBytes)),
      row(outcomes, 'all chunks incl. lazy ones, min + gzip', 'kB', 'lower', (m) => kB(m.total.gzipBytes)),
    ];
    return {
      id: 'bundle-size',
      title: '9. Browser bundle',
      rows,
      notes: [
        'A minimal browser entry per peer (one Yjs doc, synced; scopesync and y-websocket also keep it in IndexedDB: @scopesync/client against y-websocket 3 + y-indexeddb, and @hocuspocus/provider, which has no offline store) bundled by esbuild: minified ES2022 modules with code splitting, gzip level 9. kB = 1,000 bytes.',
        '"Loaded at start" is the entry chunk and its static imports. scopesync loads @scopesync/crypto and libsodium with import() the first time a USER_PRIVATE doc, an encrypted blob or client.encryption is used — and when a new device first registers, to publish its public keys — so they count only in "all chunks".',
      ],
      details: Object.fromEntries(
        Object.entries(outcomes).map(([name, o]) => [
          name,
          o.ok
            ? {
                initialGzipBytes: o.value.initial.gzipBytes,
                initialChunks: o.value.initial.chunks,
                totalGzipBytes: o.value.total.gzipBytes,
              }
            : { error: o.error },
        ]),
      ),
    };
  },
};
