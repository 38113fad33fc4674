import { defineConfig, type Options } from 'tsup';

/**
 * The CommonJS build (the one Next loads as cacheHandler) keeps a literal `require('lz4-napi')` (and of its WebAssembly
 * fallback): Next's output file tracing (`output: 'standalone'`) follows only literal requires, and esbuild's code
 * splitting writes `__require(...)`.
 */
const TRACED = ['lz4-napi', 'lz4-wasm-nodejs'];
const literalRequires: NonNullable<Options['plugins']>[number] = {
  name: 'literal-requires',
  renderChunk(code, chunk) {
    if (this.format !== 'cjs') return undefined;
    let out = code;
    for (const name of TRACED) out = out.replaceAll(`__require("${name}")`, `require("${name}")`);
    return out === code ? undefined : { code: out, map: chunk.map };
  },
};

/**
 * `keepNames` (below) names classes and functions through esbuild's `__name` helper, and that includes every arrow
 * function a call creates: `const answer = (...) => ...` in a handler's `get` became an `Object.defineProperty` per
 * call, a third of an L1 hit's CPU. Names matter for classes and declared functions (logs, `info().backend`, stack
 * traces); arrow functions (no `prototype`) keep their inferred name or none, and cost nothing. The helper esbuild
 * emits is replaced by one that skips them; a build whose helper no longer reads as expected fails here, and
 * `test/package.test.ts` checks that an L1 hit of the built handler defines no property.
 */
const ESBUILD_NAME_HELPER = 'var __name = (target, value) => __defProp(target, "name", { value, configurable: true });';
const CHEAP_NAME_HELPER = 'var __name = (target, value) => target.prototype === undefined ? target : __defProp(target, "name", { value, configurable: true });';
const namesClassesOnly: NonNullable<Options['plugins']>[number] = {
  name: 'names-without-per-call-cost',
  renderChunk(code, chunk) {
    if (!/\bvar __name = /.test(code)) return undefined;
    if (!code.includes(ESBUILD_NAME_HELPER)) throw new Error(`${chunk.path}: esbuild's __name helper changed; update tsup.config.ts`);
    return { code: code.replace(ESBUILD_NAME_HELPER, CHEAP_NAME_HELPER), map: chunk.map };
  },
};

export default defineConfig({
  // Each public entry point; Next loads `handler` with a native import() and does not compile it.
  entry: {
    index: 'src/index.ts',
    // The byte layer and the building blocks under the loaders; the conformance suite for custom backends.
    protocol: 'src/protocol.ts',
    testing: 'src/testing.ts',
    handler: 'src/handler.ts',
    // The `cacheHandlers` ('use cache') handler object; loaded the same way.
    'use-cache': 'src/use-cache.ts',
    // `withCachekit` for next.config (.mjs imports the ESM build; .js and the transpiled .ts require the CJS one).
    config: 'src/next/config.ts',
    // Prometheus metrics, stats() and tracing; the health check: each with its ready route handler.
    metrics: 'src/metrics.ts',
    health: 'src/health.ts',
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
  plugins: [literalRequires, namesClassesOnly],
  // Lets a module write `require('x')` in the CommonJS build only (see src/wire/envelope.ts).
  esbuildOptions(options, context) {
    options.define = { ...options.define, __CACHEKIT_CJS__: context.format === 'cjs' ? 'true' : 'false' };
  },
});
