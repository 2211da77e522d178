import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const webDir = fileURLToPath(new URL('.', import.meta.url));

/**
 * Builds the tour into `outDir` with this app's Vite config — what `npm run build` does, but
 * to any directory, so tests can serve a fresh build without touching `dist/`.
 */
export async function buildWebApp(outDir: string): Promise<void> {
  await build({
    root: webDir,
    configFile: fileURLToPath(new URL('./vite.config.ts', import.meta.url)),
    build: { outDir, emptyOutDir: true },
    logLevel: 'warn',
  });
}
