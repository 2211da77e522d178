import { createReadStream, realpathSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { SyncError } from '@scopesync/core';
import { appSecurityHeaders } from './security-headers.ts';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

/** Options of {@link StaticFiles}. */
export interface StaticFilesOptions {
  /** The directory served at `/` (e.g. the web app's `dist`). */
  readonly root: string;
  /** The page answered for unknown extension-less paths (client-side routes). Default `index.html`. */
  readonly fallback?: string;
  /**
   * Directories that must never be served (the relay's data dir): a root that equals or contains
   * one of them is refused at construction.
   */
  readonly forbidden?: readonly string[];
}

/**
 * Why `root` must not be served given the `forbidden` directories, or null when it may: an
 * empty root (which would resolve to the working directory) or a root that equals or contains a
 * forbidden directory, compared by real path where the paths exist.
 */
export function staticRootProblem(root: string, forbidden: readonly string[] = []): string | null {
  if (root.trim() === '')
    return 'the static directory must not be empty (it would serve the working directory)';
  const realRoot = realPathOf(resolve(root));
  for (const dir of forbidden) {
    const realDir = realPathOf(resolve(dir));
    if (realDir === realRoot || realDir.startsWith(realRoot === sep ? sep : realRoot + sep)) {
      return `the static directory ${realRoot} contains the data directory ${realDir}: refusing to serve it`;
    }
  }
  return null;
}

/** The real path of `path`, or of its nearest existing ancestor joined with the rest. */
function realPathOf(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    const parent = dirname(path);
    return parent === path
      ? path
      : join(realPathOf(parent), path.slice(parent.length + (parent.endsWith(sep) ? 0 : 1)));
  }
}

/**
 * Serves a built single-page app from one directory, safely: only decoded paths without
 * `.`/`..` segments, backslashes or NUL bytes, resolved inside the root even through
 * symlinks; unknown paths without an extension get `index.html` (SPA fallback).
 */
export class StaticFiles {
  readonly #root: string;
  readonly #fallback: string;
  #realRoot: Promise<string | null> | null = null;

  /** Throws BadRequest for an empty root or one that equals or contains a forbidden directory. */
  constructor(options: StaticFilesOptions) {
    const problem = staticRootProblem(options.root, options.forbidden);
    if (problem !== null) throw new SyncError('BadRequest', problem);
    this.#root = resolve(options.root);
    this.#fallback = options.fallback ?? 'index.html';
  }

  /** Answers a GET/HEAD for decoded path `segments`; resolves false when there is nothing to serve. */
  async serve(req: IncomingMessage, res: ServerResponse, segments: readonly string[]): Promise<boolean> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const root = await this.#resolvedRoot();
    if (root === null) return false;
    if (
      segments.some((s) => s === '.' || s === '..' || s.includes('\\') || s.includes('\0') || s.includes('/'))
    ) {
      return false;
    }
    const parts = segments.filter((s) => s !== '');
    const file =
      (await this.#file(root, parts)) ??
      (this.#isRoute(parts) ? await this.#file(root, [this.#fallback]) : null);
    if (file === null) return false;
    const type = CONTENT_TYPES[extname(file.path).toLowerCase()] ?? 'application/octet-stream';
    // Hashed build assets never change; the page itself must be revalidated to pick up a new build.
    const immutable = parts[0] === 'assets' && file.path !== join(root, this.#fallback);
    res.writeHead(200, {
      'content-type': type,
      'content-length': String(file.size),
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      ...appSecurityHeaders(req),
    });
    if (req.method === 'HEAD') {
      res.end();
      return true;
    }
    await new Promise<void>((done) => {
      const stream = createReadStream(file.path);
      stream.on('error', () => {
        // The file vanished or became unreadable mid-answer: the status is gone, so end the socket.
        res.destroy();
        done();
      });
      stream.on('end', () => done());
      stream.pipe(res);
    });
    return true;
  }

  /** Extension-less paths are client-side routes of the app. */
  #isRoute(parts: readonly string[]): boolean {
    const last = parts[parts.length - 1];
    return last === undefined || extname(last) === '';
  }

  async #file(root: string, parts: readonly string[]): Promise<{ path: string; size: number } | null> {
    let path = resolve(root, ...parts);
    if (path !== root && !path.startsWith(root + sep)) return null;
    try {
      let info = await stat(path);
      if (info.isDirectory()) {
        path = join(path, 'index.html');
        info = await stat(path);
      }
      if (!info.isFile()) return null;
      // A symlink inside the root must not lead outside it.
      const real = await realpath(path);
      if (!real.startsWith(root + sep)) return null;
      return { path: real, size: info.size };
    } catch {
      // Missing or unreadable: either way there is no file to serve here.
      return null;
    }
  }

  /** The root's real path, or null when it does not exist (then nothing is served). */
  #resolvedRoot(): Promise<string | null> {
    this.#realRoot ??= realpath(this.#root).catch(() => null);
    return this.#realRoot;
  }
}
