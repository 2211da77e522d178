import { createHash } from 'node:crypto';
import type { Plugin } from 'vite';

/** The placeholder in the service worker source that the build replaces with the file list. */
export const PRECACHE_PLACEHOLDER = 'self.__PRECACHE_MANIFEST__';

/**
 * Writes the list of every file the build emits into the service worker (`sw.js`), with a
 * version derived from their contents, so the worker can cache the whole app shell at install
 * and the app loads with the relay down. A new build changes the version, which makes the
 * browser install the new worker and drop the old cache.
 */
export function precacheManifestPlugin(serviceWorkerFile = 'sw.js'): Plugin {
  return {
    name: 'scopesync-precache-manifest',
    apply: 'build',
    enforce: 'post',
    generateBundle: {
      // After Vite's own html plugin, so index.html is in the bundle too.
      order: 'post',
      handler(_options, bundle) {
        const worker = bundle[serviceWorkerFile];
        if (worker?.type !== 'chunk') {
          this.error(`precache: the build has no ${serviceWorkerFile} chunk`);
        }
        const hash = createHash('sha256');
        const urls: string[] = ['/'];
        for (const [fileName, output] of Object.entries(bundle).sort(([a], [b]) => a.localeCompare(b))) {
          if (fileName === serviceWorkerFile || fileName.endsWith('.map')) continue;
          urls.push(`/${fileName}`);
          hash.update(fileName);
          hash.update(output.type === 'chunk' ? output.code : output.source);
        }
        const manifest = { version: hash.digest('hex').slice(0, 16), urls };
        if (!worker.code.includes(PRECACHE_PLACEHOLDER)) {
          this.error(`precache: ${serviceWorkerFile} does not reference ${PRECACHE_PLACEHOLDER}`);
        }
        worker.code = worker.code.replace(PRECACHE_PLACEHOLDER, JSON.stringify(manifest));
      },
    },
  };
}
