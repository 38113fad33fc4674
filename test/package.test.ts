/**
 * The built package, loaded the way users and Next.js load it: every `exports` entry resolves to a built file (ESM,
 * CJS and types), every built entry is exported, and the handler modules' default exports survive Next's
 * `interopDefault(await import(path))` from both builds. Run after `npm run build` (scripts/test-all.sh does).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it, vi } from 'vitest';

const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, string | { import: { types: string; default: string }; require: { types: string; default: string } }>;
};
const require = createRequire(path.join(root, 'package.json'));
const entries = Object.entries(pkg.exports).filter(([, target]) => typeof target !== 'string') as [
  string,
  { import: { types: string; default: string }; require: { types: string; default: string } },
][];

/** What Next does with a cacheHandler / cacheHandlers path. */
const interopDefault = (mod: { default?: unknown }) => (mod as { default?: unknown }).default || mod;
const loadLikeNext = async (file: string) =>
  interopDefault((await import(pathToFileURL(file).href).then((m: { default?: unknown }) => m.default || m)) as never);

describe('the built package', () => {
  it('has been built', () => {
    expect(existsSync(path.join(root, 'dist')), 'run `npm run build` first').toBe(true);
  });

  for (const [subpath, target] of entries) {
    it(`exports ${subpath} as ESM, CJS and types`, () => {
      for (const file of [target.import.default, target.import.types, target.require.default, target.require.types]) {
        expect(existsSync(path.join(root, file)), file).toBe(true);
      }
    });
  }

  it('exports every entry it builds', () => {
    const exported = new Set(entries.flatMap(([, t]) => [t.import.default, t.require.default].map((f) => path.normalize(f))));
    const built = readdirSync(path.join(root, 'dist')).filter((f) => /\.(c?js)$/.test(f) && !f.startsWith('chunk-'));
    for (const file of built) expect(exported.has(path.normalize(`dist/${file}`)), `dist/${file} is built but not exported`).toBe(true);
  });

  it('self-resolves by name, ESM and CJS, with the public API', async () => {
    const esm = (await import('cachekit-next')) as Record<string, unknown>;
    const cjs = require('cachekit-next') as Record<string, unknown>;
    for (const name of [
      'RedisBackend',
      'FileBackend',
      'MemcachedBackend',
      'CachekitIOBackend',
      'MemoryBackend',
      'BackendError',
      'setDefaultBackend',
      'cache',
      'cachedFetch',
    ]) {
      expect(typeof esm[name], `ESM ${name}`).toBe('function');
      expect(typeof cjs[name], `CJS ${name}`).toBe('function');
    }
  });

  // The public surface, entry by entry: a name added to or dropped from an entry point is a deliberate change here.
  const EXPORTS: Record<string, string[]> = {
    '.': [
      'ArgumentKeyError',
      'BackendError',
      'CachekitIOBackend',
      'ConfigError',
      'EncryptionError',
      'FileBackend',
      'MemcachedBackend',
      'MemoryBackend',
      'RedisBackend',
      'UnstorableValueError',
      'cache',
      'cachedFetch',
      'getDefaultBackend',
      'pathTag',
      'setDefaultBackend',
      'setLogger',
    ],
    './protocol': [
      'BACKEND_ENV_VARS',
      'CanonicalMsgpackError',
      'CircuitBreaker',
      'ENVELOPE_LIMITS',
      'Encryptor',
      'EnvelopeError',
      'Float64',
      'INTEROP_SEGMENT',
      'InteropDateTime',
      'InteropError',
      'InteropUuid',
      'TieredCache',
      'backendFromEnv',
      'buildAad',
      'bytesSerializer',
      'canonicalArgs',
      'createEnvelopeFormat',
      'decodeInteropValue',
      'deriveTenantKey',
      'encodeInteropValue',
      'hasAdd',
      'hasBatch',
      'hasCounter',
      'hasInvalidation',
      'hasLocks',
      'hasTtl',
      'hashArgs',
      'interopArgsHash',
      'interopKey',
      'isBackend',
      'isClosable',
      'keyFingerprint',
      'resolveBackend',
    ],
    './testing': ['resetForTests', 'testBackendConformance'],
    // No test seam: the tests reach handlerClassFor / useCacheHandlerFor in src/, users never need them.
    './handler': ['applyBuiltOptions', 'createCacheHandler', 'default'],
    './use-cache': ['applyBuiltOptions', 'createUseCacheHandler', 'default'],
    './config': ['handlerPaths', 'withCachekit'],
    './metrics': ['GET', 'createMetricsRoute', 'disableTracing', 'enableTracing', 'registerMetrics', 'stats'],
    './health': ['GET', 'createHealthRoute', 'healthCheck'],
  };

  it('pins the export list of every entry point, ESM and CJS', async () => {
    expect(entries.map(([subpath]) => subpath).sort()).toEqual(Object.keys(EXPORTS).sort());
    for (const [subpath, target] of entries) {
      const esm = (await import(pathToFileURL(path.join(root, target.import.default)).href)) as Record<string, unknown>;
      const cjs = require(path.join(root, target.require.default)) as Record<string, unknown>;
      expect(Object.keys(esm).sort(), `${subpath} ESM`).toEqual([...EXPORTS[subpath]!].sort());
      expect(
        Object.keys(cjs)
          .filter((name) => name !== '__esModule')
          .sort(),
        `${subpath} CJS`,
      ).toEqual([...EXPORTS[subpath]!].sort());
    }
  });

  it('ships the conformance suite without a test runner: it imports neither vitest nor jest', () => {
    const target = pkg.exports['./testing'] as { import: { default: string }; require: { default: string } };
    for (const file of [target.import.default, target.require.default]) {
      const code = readFileSync(path.join(root, file), 'utf8');
      expect(code, file).not.toMatch(/from ["']vitest["']|require\(["'](vitest|jest|@jest\/globals)["']\)/);
    }
  });

  it('keeps class names in the built code (what logs and info().backend report)', async () => {
    const esm = (await import('cachekit-next')) as unknown as typeof import('../src/index.js');
    const cjs = require('cachekit-next') as typeof import('../src/index.js');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ck-package-names-'));
    for (const [build, lib] of [
      ['ESM', esm],
      ['CJS', cjs],
    ] as const) {
      expect(lib.FileBackend.name, build).toBe('FileBackend');
      const f = lib.cache(
        async function probe() {
          return 1;
        },
        { backend: new lib.FileBackend({ cacheDir: dir }) },
      );
      expect(f.info().backend, build).toBe('file');
      expect(
        lib
          .cache(
            async function probe2() {
              return 1;
            },
            { backend: new lib.MemoryBackend() },
          )
          .info().backend,
        build,
      ).toBe('memory');
    }
  });

  it('makes an L1 hit of the built handlers and loaders define no property (no per-call naming of closures)', () => {
    // esbuild's keepNames named every arrow function a call created with an Object.defineProperty: a third of an L1
    // hit's CPU (tsup.config.ts). Counted on the built code, ESM and CJS, in a fresh process whose defineProperty is
    // wrapped before the package loads (the bundle keeps its own reference to it).
    const script = (condition: 'import' | 'require') => `
      const original = Object.defineProperty;
      let counting = false, defined = 0;
      Object.defineProperty = function (...args) { if (counting) defined++; return original.apply(this, args); };
      const { createRequire } = await import('node:module');
      const load = ${condition === 'import' ? '(subpath) => import(subpath)' : "(subpath) => createRequire(process.cwd() + '/package.json')(subpath)"};
      const lib = await load('cachekit-next');
      const { createCacheHandler } = await load('cachekit-next/handler');
      const Handler = createCacheHandler({ backend: null, deploymentId: 'defprop' });
      const handler = new Handler({});
      const page = { kind: 'APP_PAGE', html: '<p>hot</p>', rscData: Buffer.from('rsc'), headers: {}, status: 200 };
      await handler.set('/hot', page, { cacheControl: { revalidate: 3600, expire: 86400 }, isRoutePPREnabled: false, isFallback: false });
      let n = 0;
      const loader = lib.cache(async (id) => ({ id, n: ++n }), { backend: null, name: 'defprop' });
      await loader(1);
      const ctx = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };
      counting = true;
      let served = 0;
      for (let i = 0; i < 100; i++) {
        if ((await handler.get('/hot', ctx))?.value?.html === '<p>hot</p>') served++;
        if ((await loader(1)).n === 1) served++;
      }
      counting = false;
      console.log(JSON.stringify({ served, defined }));
    `;
    for (const condition of ['import', 'require'] as const) {
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script(condition)], { cwd: root, encoding: 'utf8' });
      const last = out.trim().split('\n').at(-1) ?? '';
      expect(JSON.parse(last), condition).toEqual({ served: 200, defined: 0 });
    }
  });

  it('gives Next a constructible cache handler class from both builds', async () => {
    vi.stubEnv('CACHEKIT_FILE_CACHE_DIR', mkdtempSync(path.join(os.tmpdir(), 'ck-package-')));
    for (const condition of ['import', 'require'] as const) {
      const target = pkg.exports['./handler'] as { import: { default: string }; require: { default: string } };
      const file = path.join(root, target[condition].default);
      const Handler = (await loadLikeNext(file)) as new (ctx: object) => { get: unknown; set: unknown; revalidateTag: unknown };
      expect(typeof Handler, condition).toBe('function');
      const instance = new Handler({ serverDistDir: '/tmp/none/.next/server' });
      expect(typeof instance.get).toBe('function');
      expect(typeof instance.set).toBe('function');
      expect(typeof instance.revalidateTag).toBe('function');
    }
  });

  it("lets output file tracing (output: 'standalone') find the native LZ4 binary and its WebAssembly fallback from every entry point", async () => {
    // The tracer Next runs for standalone output (webpack builds; Turbopack follows the same literal requires).
    const { nodeFileTrace } = require('next/dist/compiled/@vercel/nft') as {
      nodeFileTrace(files: string[], options: { base: string }): Promise<{ fileList: Set<string> }>;
    };
    const native = path.relative(root, path.dirname(require.resolve('lz4-napi')));
    // ./testing holds only the conformance suite: no compression, no backend client.
    for (const [subpath, target] of entries.filter(([subpath]) => subpath !== './testing')) {
      for (const file of [target.import.default, target.require.default]) {
        const { fileList } = await nodeFileTrace([path.join(root, file)], { base: root });
        const traced = [...fileList];
        expect(traced, `${subpath} (${file}): lz4-napi`).toContain(path.join(native, 'index.js'));
        expect(
          traced.some((f) => f.endsWith('.node') && f.includes('lz4-napi')),
          `${subpath} (${file}): its .node binary`,
        ).toBe(true);
        // The fallback where the binary does not load: the same LZ4 in WebAssembly.
        expect(
          traced.some((f) => f.endsWith('lz4_wasm_nodejs_bg.wasm')),
          `${subpath} (${file}): lz4-wasm-nodejs`,
        ).toBe(true);
        // The backend clients are imported on first connect (a string-literal import() the tracer follows).
        if (subpath === './handler' || subpath === './use-cache' || subpath === '.') {
          for (const client of ['ioredis', 'memjs', 'undici']) {
            const main = path.relative(root, require.resolve(client));
            expect(traced, `${subpath} (${file}): ${client}`).toContain(main);
          }
        }
      }
    }
  }, 120_000); // tracing every entry point reads the whole dependency tree: slow on a loaded machine

  it('loads no backend client (ioredis, memjs, undici) for an app that caches in memory or on disk', () => {
    // A fresh process per build: what an app on the File or Memory backend pays at import and first call.
    const probe = `
      const { createRequire } = require('node:module');
      const { mkdtempSync } = require('node:fs');
      const path = require('node:path');
      const os = require('node:os');
      (async () => {
        const file = process.argv[1];
        const lib = file.endsWith('.cjs') ? require(file) : await import(require('node:url').pathToFileURL(file).href);
        const dir = mkdtempSync(path.join(os.tmpdir(), 'ck-lazy-clients-'));
        const onDisk = lib.cache(async function double(x) { return x * 2; }, { backend: new lib.FileBackend({ cacheDir: dir }) });
        const inMemory = lib.cache(async function inc(x) { return x + 1; }, { backend: new lib.MemoryBackend() });
        const results = [await onDisk(2), await onDisk(2), await inMemory(1)];
        const loaded = Object.keys(createRequire(file).cache).filter((p) => /node_modules[\\/](ioredis|memjs|undici)[\\/]/.test(p));
        process.stdout.write(JSON.stringify({ results, loaded }));
      })().catch((error) => { console.error(error); process.exit(1); });
    `;
    const target = pkg.exports['.'] as { import: { default: string }; require: { default: string } };
    for (const file of [target.import.default, target.require.default]) {
      const out = JSON.parse(execFileSync(process.execPath, ['-e', probe, path.join(root, file)], { encoding: 'utf8' })) as {
        results: number[];
        loaded: string[];
      };
      expect(out.results, file).toEqual([4, 4, 2]);
      expect(out.loaded, file).toEqual([]);
    }
  });

  it('shares one process registry between the ESM and CJS builds (setDefaultBackend in one is the default of the other)', async () => {
    type Api = { MemoryBackend: new () => object; setDefaultBackend(b: object | null): void; getDefaultBackend(): object | undefined };
    const esm = (await import('cachekit-next')) as unknown as Api;
    const cjs = require('cachekit-next') as Api;
    const esmTesting = (await import('cachekit-next/testing')) as unknown as { resetForTests(): Promise<void> };
    const backend = new esm.MemoryBackend();
    esm.setDefaultBackend(backend);
    expect(cjs.getDefaultBackend()).toBe(backend);
    // One reset, from either build, clears both.
    await esmTesting.resetForTests();
    expect(cjs.getDefaultBackend()).toBeUndefined();
    expect(esm.getDefaultBackend()).toBeUndefined();
  });
});
