/**
 * Registers the app-shell service worker (built as /sw.js), so the tour loads with the relay
 * down. Not under `vite dev` (recognised by its hot-module API), where a cached shell would
 * hide code changes. `import.meta.env.PROD` is not used for this: it follows NODE_ENV, which
 * a build started from a test runner (NODE_ENV=test) does not set to production.
 */
export function registerServiceWorker(): void {
  if (!('serviceWorker' in navigator) || import.meta.hot) return;
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((error: unknown) => {
    // Without it the app still works online; offline reloads are what is lost. Say so.
    console.warn(
      'scopesync tour: the service worker could not be registered; offline reloads will not work',
      error,
    );
  });
}
