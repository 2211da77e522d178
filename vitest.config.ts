import { defineConfig } from 'vitest/config';

/**
 * One Vitest config for every workspace. Packages run their tests from source through the
 * `source` export condition, so no build is needed before `npm test`. Vitest hands the `ssr`
 * conditions to Node as `--conditions`: only `source` goes there, since with `import` among
 * them Node's require() inside CommonJS packages (node-postgres) would load ESM builds.
 */
export default defineConfig({
  root: process.cwd(),
  resolve: { conditions: ['source', 'module', 'import', 'default'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    include: ['src/**/*.test.ts', '*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', '**/*.browser.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: process.env.CI ? ['dot'] : ['default'],
  },
});
