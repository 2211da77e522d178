import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { build } from 'esbuild';

/** A page served on loopback that runs one bundled browser entry point. */
export interface BundledPage {
  /** The page's address, e.g. `http://127.0.0.1:PORT/`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Bundles `entryPoint` for the browser (from source, through the `source` export condition)
 * and serves it as the module script of an otherwise empty page.
 */
export async function serveBundledPage(entryPoint: string): Promise<BundledPage> {
  const bundle = await build({
    entryPoints: [entryPoint],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['source'],
    // React picks its build from NODE_ENV: the development one, so StrictMode runs effects twice.
    define: { 'process.env.NODE_ENV': '"development"' },
    write: false,
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0]?.text ?? '';
  const html =
    '<!doctype html><meta charset="utf-8"><title>scopesync</title><script type="module" src="/client.js"></script>';
  const server = createServer((req, res) => {
    const isScript = req.url?.startsWith('/client.js') === true;
    res.writeHead(200, {
      'content-type': isScript ? 'text/javascript' : 'text/html',
      'cache-control': 'no-store',
    });
    res.end(isScript ? script : html);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
