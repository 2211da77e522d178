/// <reference lib="WebWorker" />
/**
 * The app-shell service worker: it precaches every file of the build at install, so the tour
 * loads and runs with the relay down (the data itself lives in IndexedDB, kept by the client).
 * Only the app's own files are served from the cache; API calls and the sync socket always go
 * to the network, where the client handles being offline.
 */

declare const self: ServiceWorkerGlobalScope;

/** What the build writes in place of the placeholder (see precache-manifest-plugin.ts). */
interface PrecacheManifest {
  readonly version: string;
  readonly urls: readonly string[];
}

declare global {
  interface WorkerGlobalScope {
    __PRECACHE_MANIFEST__: PrecacheManifest;
  }
}

const manifest: PrecacheManifest = self.__PRECACHE_MANIFEST__;
const CACHE_PREFIX = 'scopesync-shell-';
const cacheName = CACHE_PREFIX + manifest.version;
const precached = new Set(manifest.urls);

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(cacheName);
      // `reload` bypasses the HTTP cache so a new version never precaches stale files.
      await cache.addAll(manifest.urls.map((url) => new Request(url, { cache: 'reload' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== cacheName) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate') {
    event.respondWith(networkFirst(request));
  } else if (precached.has(url.pathname)) {
    event.respondWith(cacheFirst(request, url.pathname));
  }
});

/** Pages: the network while the relay is up (so a new build shows at once), else the cached shell. */
async function networkFirst(request: Request): Promise<Response> {
  try {
    return await fetch(request);
  } catch (error) {
    const cached = await caches.match('/', { cacheName });
    if (cached) return cached;
    throw error;
  }
}

/** Built assets have content hashes in their names, so a cached copy is always right. */
async function cacheFirst(request: Request, pathname: string): Promise<Response> {
  const cached = await caches.match(pathname, { cacheName });
  return cached ?? fetch(request);
}

export {};
