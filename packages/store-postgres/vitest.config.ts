import { defineConfig } from 'vitest/config';
import root from '../../vitest.config.ts';

/**
 * The repo's config, except the conditions Vitest hands to Node as `--conditions`: with
 * `import` among them, Node's require() inside node-postgres (CommonJS) picks pg-pool's ESM
 * build and gets a module namespace instead of the Pool class. `source` is all the workspace
 * packages need; Node adds `import` or `require` itself as each module asks.
 */
export default defineConfig({
  ...root,
  ssr: { resolve: { conditions: ['source'] } },
});
