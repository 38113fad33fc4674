import { defineConfig } from 'tsup';

export default defineConfig({
  // Each public entry point; Next loads `handler` with a native import() and does not compile it.
  entry: {
    index: 'src/index.ts',
    handler: 'src/next/cache-handler.ts',
    // The `cacheHandlers` ('use cache') handler object; loaded the same way.
    'use-cache': 'src/next/use-cache-handler.ts',
    // `withCachekit` for next.config (.mjs imports the ESM build; .js and the transpiled .ts require the CJS one).
    config: 'src/next/config.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: true,
  treeshake: true,
  // Class names stay as written (esbuild would emit `class _FileBackend`): logs and `info().backend` use them.
  keepNames: true,
});
