import { fileURLToPath } from 'node:url';
import { defaultClientConditions, defineConfig } from 'vite';
import { precacheManifestPlugin } from './precache-manifest-plugin.ts';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** The relay `vite dev` forwards API calls and the sync socket to (`npm start` runs one on 8787). */
const relay = process.env.SCOPESYNC_RELAY ?? 'http://127.0.0.1:8787';
/** The relay's HTTP routes (DESIGN §4); in dev the page and the relay share an origin through the proxy. */
const RELAY_ROUTES = ['/keys', '/users', '/userdata', '/blob', '/share', '/audit', '/health', '/metrics'];

/**
 * The product tour. Workspace packages are bundled from their TypeScript sources (the
 * `source` export condition), so `vite build` needs no prior build of the packages. The
 * service worker is a second entry emitted as `/sw.js` (a worker's scope is its directory),
 * with the list of built files written into it for precaching. `vite dev` proxies the relay's
 * routes, so the page talks to it as if the relay served it.
 */
export default defineConfig({
  resolve: { conditions: ['source', ...defaultClientConditions] },
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    rollupOptions: {
      input: { main: here('./index.html'), sw: here('./src/sw/service-worker.ts') },
      output: {
        entryFileNames: (chunk) => (chunk.name === 'sw' ? 'sw.js' : 'assets/[name]-[hash].js'),
      },
    },
  },
  server: {
    proxy: {
      ...Object.fromEntries(RELAY_ROUTES.map((route) => [route, { target: relay }])),
      '/sync': { target: relay, ws: true },
    },
  },
  plugins: [precacheManifestPlugin('sw.js')],
});
