/**
 * `withCachekit` (cachekit-next/config): the config it produces, validation naming the option, the options carried in
 * CACHEKIT_NEXT_OPTIONS, user settings never clobbered, backend modules and descriptions, and real next.config files
 * (.js required, .mjs imported, .ts transpiled) loaded by Next's own loadConfig. Needs the built package (`npm run build`).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FileBackend } from '../../src/backends/file.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { setDefaultBackend } from '../../src/stack/resolve.js';
import type { Backend } from '../../src/protocol/backend.js';
import { ConfigError } from '../../src/shared/options.js';
import { setLogger } from '../../src/shared/log.js';
import CacheHandler from '../../src/next/cache-handler.js';
import { withCachekit, type WithCachekitOptions } from '../../src/next/config.js';
import { configuredOptions, configuredStack, OPTIONS_ENV, resetStacks, type CacheStack } from '../../src/stack/stack.js';
import useCacheHandler from '../../src/next/use-cache-handler.js';
import { fetchValue } from './fixtures.js';

const execFileAsync = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const dist = path.join(root, 'dist');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ck-config-'));
const savedOptions = process.env[OPTIONS_ENV];

afterEach(async () => {
  if (savedOptions === undefined) delete process.env[OPTIONS_ENV];
  else process.env[OPTIONS_ENV] = savedOptions;
  setDefaultBackend(null);
  await resetStacks();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The ConfigError `run` throws, so a test can check the option it names. */
function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

function writeModule(name: string, source: string): string {
  const file = path.join(tmp, name);
  writeFileSync(file, source);
  return file;
}

describe('withCachekit', () => {
  it("points Next at this package's handler modules by absolute, existing paths, with cacheMaxMemorySize 0", () => {
    const config = withCachekit({ reactStrictMode: true, cacheHandlers: { custom: '/somewhere/custom.js' } });
    expect(config.reactStrictMode).toBe(true);
    expect(config.cacheMaxMemorySize).toBe(0);
    for (const file of [config.cacheHandler, config.cacheHandlers?.default, config.cacheHandlers?.remote]) {
      expect(path.isAbsolute(file!), file).toBe(true);
      expect(existsSync(file!), file).toBe(true);
      expect(path.dirname(file!)).toBe(dist);
    }
    expect(path.basename(config.cacheHandler!)).toMatch(/^handler\.c?js$/);
    expect(path.basename(config.cacheHandlers!.default!)).toMatch(/^use-cache\.c?js$/);
    expect(config.cacheHandlers?.custom).toBe('/somewhere/custom.js'); // other kinds are kept
    // App code importing cachekit-next (cache, cachedFetch) loads it from node_modules, not a bundle.
    expect(config.serverExternalPackages).toEqual(['cachekit-next']);
    expect(withCachekit({ serverExternalPackages: ['sharp'] }).serverExternalPackages).toEqual(['sharp', 'cachekit-next']);
    expect(withCachekit({ serverExternalPackages: ['cachekit-next'] }).serverExternalPackages).toEqual(['cachekit-next']);
    expect(() => withCachekit({ serverExternalPackages: 'sharp' as never })).toThrow(/serverExternalPackages/);
  });

  it('carries validated, serialisable options in CACHEKIT_NEXT_OPTIONS, which the handlers read back', () => {
    const options: WithCachekitOptions = { namespace: 'shop', keyPrefix: 'ck:', l1: { maxSizeMb: 20 }, warmStart: true, compression: false, timeoutMs: 900 };
    withCachekit({}, options);
    expect(JSON.parse(process.env[OPTIONS_ENV]!)).toEqual(options);
    expect(configuredOptions()).toEqual(options);
    withCachekit({}); // nothing configured: the environment decides, as without withCachekit
    expect(JSON.parse(process.env[OPTIONS_ENV]!)).toEqual({});
  });

  it('warns when it replaces a CACHEKIT_NEXT_OPTIONS set by hand, not when it rewrites its own', () => {
    const warnings: string[] = [];
    setLogger({ info: () => {}, warn: (message: string) => warnings.push(message) });
    try {
      process.env[OPTIONS_ENV] = '{"namespace":"by-hand"}';
      withCachekit({}, { namespace: 'from-config' });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/replaces the CACHEKIT_NEXT_OPTIONS set in the environment/);
      expect(warnings[0]).not.toMatch(/by-hand/); // never printed: it may hold a credential
      withCachekit({}, { namespace: 'edited-config' }); // next.config evaluated again in this process
      withCachekit({}, { namespace: 'edited-config' }); // or by a worker that inherited the value
      expect(warnings).toHaveLength(1);
    } finally {
      setLogger(null);
    }
  });

  it('rejects bad options when next.config is evaluated, naming the option', () => {
    expect(configError(() => withCachekit({}, { keyprefix: 'x' } as never)).option).toBe('keyprefix');
    expect(configError(() => withCachekit({}, { maxTtlSeconds: -5 })).option).toBe('maxTtlSeconds');
    expect(configError(() => withCachekit({}, { l1: { maxSizeMb: 0 } })).option).toBe('l1.maxSizeMb');
    expect(configError(() => withCachekit({}, { warmStart: 'yes' as never })).option).toBe('warmStart');
    const onError = configError(() => withCachekit({}, { onError: () => {} } as never));
    expect(onError.option).toBe('onError');
    expect(onError.message).toMatch(/createCacheHandler/);
    const object = configError(() => withCachekit({}, { backend: new MemoryBackend() as never }));
    expect(object.option).toBe('backend');
    expect(object.message).toMatch(/module/);
    expect(configError(() => withCachekit({}, { backend: 42 as never })).option).toBe('backend');
    expect(configError(() => withCachekit(null as never)).option).toBe('nextConfig');
  });

  it('never clobbers a cache setting of the user: a different one is a ConfigError naming it', () => {
    expect(configError(() => withCachekit({ cacheHandler: '/app/my-handler.js' })).option).toBe('cacheHandler');
    expect(configError(() => withCachekit({ cacheMaxMemorySize: 50 * 1024 * 1024 })).option).toBe('cacheMaxMemorySize');
    expect(configError(() => withCachekit({ cacheHandlers: { default: '/app/uc.js' } })).option).toBe('cacheHandlers.default');
    expect(configError(() => withCachekit({ cacheHandlers: { remote: '/app/uc.js' } })).option).toBe('cacheHandlers.remote');
    expect(configError(() => withCachekit({ experimental: { cacheHandlers: { remote: '/app/uc.js' } } })).option).toBe('experimental.cacheHandlers.remote');
    // Already ours (either build), or the value withCachekit sets anyway: accepted.
    const ours = withCachekit({ cacheHandler: path.join(dist, 'handler.js'), cacheMaxMemorySize: 0 });
    expect(ours.cacheHandler).toBe(path.join(dist, 'handler.cjs'));
    expect(withCachekit(ours).cacheHandlers).toEqual(ours.cacheHandlers);
  });

  it("keeps the user's experimental.cacheHandlers where they are (Next 16 moves them over top-level ones)", () => {
    const config = withCachekit({ experimental: { cacheHandlers: { custom: '/c.js' }, useCache: true } });
    expect(config.cacheHandlers).toBeUndefined();
    expect(config.experimental).toEqual({
      useCache: true,
      cacheHandlers: { custom: '/c.js', default: path.join(dist, 'use-cache.cjs'), remote: path.join(dist, 'use-cache.cjs') },
    });
  });

  it('wraps a config function, applying to what it returns', async () => {
    const wrapped = withCachekit(async (phase: string) => ({ env: { PHASE: phase } }), { namespace: 'fn' });
    expect(typeof wrapped).toBe('function');
    const config = await wrapped('phase-production-build', { defaultConfig: {} });
    expect(config.env).toEqual({ PHASE: 'phase-production-build' });
    expect(config.cacheHandler).toBe(path.join(dist, 'handler.cjs'));
    expect(JSON.parse(process.env[OPTIONS_ENV]!)).toEqual({ namespace: 'fn' });
  });

  describe('backend', () => {
    it('a module path (relative to the app directory, absolute, or a file: URL) becomes an absolute path', () => {
      const file = writeModule('rel.backend.mjs', 'export default null;');
      const cwd = vi.spyOn(process, 'cwd').mockReturnValue(tmp);
      try {
        withCachekit({}, { backend: './rel.backend.mjs' });
      } finally {
        cwd.mockRestore();
      }
      expect(JSON.parse(process.env[OPTIONS_ENV]!).backend).toEqual({ module: file });
      withCachekit({}, { backend: pathToFileURL(file) });
      expect(JSON.parse(process.env[OPTIONS_ENV]!).backend).toEqual({ module: file });
      const missing = configError(() => withCachekit({}, { backend: './no-such.backend.mjs' }));
      expect(missing.option).toBe('backend');
      expect(missing.message).toMatch(/does not exist/);
    });

    it('descriptions are validated by the backend itself (naming its option) and carried as JSON', () => {
      withCachekit({}, { backend: { type: 'redis', url: 'redis://127.0.0.1:6399', keyPrefix: 'a:' } });
      expect(JSON.parse(process.env[OPTIONS_ENV]!).backend).toEqual({ type: 'redis', url: 'redis://127.0.0.1:6399', keyPrefix: 'a:' });
      withCachekit({}, { backend: { type: 'file', cacheDir: 'store/cache' } });
      expect(JSON.parse(process.env[OPTIONS_ENV]!).backend).toEqual({ type: 'file', cacheDir: path.resolve('store/cache') });
      withCachekit({}, { backend: { type: 'memcached', servers: ['127.0.0.1:11299'] } });
      withCachekit({}, { backend: { type: 'cachekitio' } }); // the API key may come from the server's environment
      withCachekit({}, { backend: null });
      expect(JSON.parse(process.env[OPTIONS_ENV]!).backend).toBeNull();

      expect(configError(() => withCachekit({}, { backend: { type: 'redis', url: 'redis://x:1', comandTimeoutMs: 5 } as never })).option).toBe(
        'comandTimeoutMs',
      );
      expect(configError(() => withCachekit({}, { backend: { type: 'file', maxSizeMb: -1 } })).option).toBe('maxSizeMb');
      expect(configError(() => withCachekit({}, { backend: { type: 'memcached', timeoutMs: 0 } })).option).toBe('timeoutMs');
      expect(configError(() => withCachekit({}, { backend: { type: 'dynamo' } as never })).option).toBe('backend.type');
      expect(configError(() => withCachekit({}, { backend: { type: 'redis', url: 'redis://x:1', tls: { ca: Buffer.from('x') } } as never })).message).toMatch(
        /JSON/,
      );
    });
  });
});

describe('the default handlers configured by withCachekit', () => {
  const recorded = () => (globalThis as { __ckConfigTest?: MemoryBackend }).__ckConfigTest!;
  beforeEach(() => delete (globalThis as { __ckConfigTest?: unknown }).__ckConfigTest);

  /** A module of the app's, as a user writes it: it imports the published package (the built one here). */
  const memoryModule = (body: string) =>
    `import { MemoryBackend, setDefaultBackend } from ${JSON.stringify(pathToFileURL(path.join(dist, 'index.js')).href)};\n` +
    `const backend = (globalThis.__ckConfigTest = new MemoryBackend());\n${body}\n`;

  async function roundTrip(): Promise<CacheStack> {
    const handler = new CacheHandler({});
    await handler.set('k', fetchValue(), { fetchCache: true, tags: ['posts'] });
    expect(await handler.get('k', { kind: 'FETCH', tags: ['posts'], softTags: [] })).not.toBeNull();
    return CacheHandler.stack();
  }

  it('import a backend module default-exporting a backend once per process, and both handlers share its stack', async () => {
    const file = writeModule('default.backend.mjs', memoryModule('globalThis.__ckImports = (globalThis.__ckImports ?? 0) + 1;\nexport default backend;'));
    withCachekit({}, { backend: file, namespace: 'mod-default' });
    expect(configuredStack()).toBeInstanceOf(Promise); // not imported yet
    const rt = await roundTrip();
    expect(recorded().size).toBeGreaterThan(0);
    expect(rt.namespace).toBe('mod-default');
    expect(await useCacheHandler.stack()).toBe(rt);
    expect(configuredStack()).toBe(rt); // imported: synchronous from now on
    expect((globalThis as { __ckImports?: number }).__ckImports).toBe(1);
  });

  it('a module that calls setDefaultBackend', async () => {
    withCachekit({}, { backend: writeModule('set-default.backend.mjs', memoryModule('setDefaultBackend(backend);')) });
    await roundTrip();
    expect(recorded().size).toBeGreaterThan(0);
  });

  it('a module default-exporting an async factory', async () => {
    withCachekit({}, { backend: writeModule('factory.backend.mjs', memoryModule('export default async () => backend;')) });
    await roundTrip();
    expect(recorded().size).toBeGreaterThan(0);
  });

  it('a module that does neither: every call is a reported miss, never a render error', async () => {
    const warnings: string[] = [];
    setLogger({ info: () => {}, warn: (message: string) => warnings.push(message) });
    try {
      withCachekit({}, { backend: writeModule('nothing.backend.mjs', 'export const unrelated = 1;') });
      const handler = new CacheHandler({});
      await handler.set('k', fetchValue(), { fetchCache: true });
      expect(await handler.get('k', { kind: 'FETCH' })).toBeNull();
      expect(await useCacheHandler.get('k', [])).toBeUndefined();
      expect(await useCacheHandler.getExpiration(['t'])).toBe(0);
      await useCacheHandler.updateTags(['t']);
      expect(warnings.join('\n')).toMatch(/nothing\.backend\.mjs must default-export a backend/);
    } finally {
      setLogger(null);
    }
  });

  it('a broken CACHEKIT_NEXT_OPTIONS set by hand: constructing never throws, every call is a miss naming the variable', async () => {
    const warnings: string[] = [];
    setLogger({ info: () => {}, warn: (message: string) => warnings.push(message) });
    try {
      for (const raw of ['{not json', 'null', '{"maxTtlSeconds":-1}', '{"backend":{"type":"dynamo"}}']) {
        process.env[OPTIONS_ENV] = raw;
        const handler = new CacheHandler({});
        await handler.set('k', fetchValue(), { fetchCache: true });
        expect(await handler.get('k', { kind: 'FETCH' })).toBeNull();
        await handler.revalidateTag('t');
        expect(await useCacheHandler.get('k', [])).toBeUndefined();
        await useCacheHandler.set('k', Promise.reject(new Error('render failed')));
      }
      expect(warnings.join('\n')).toMatch(/CACHEKIT_NEXT_OPTIONS` is not valid JSON/);
      expect(warnings.join('\n')).toMatch(/CACHEKIT_NEXT_OPTIONS` must be a JSON object/);
      expect(warnings.join('\n')).toMatch(/maxTtlSeconds/);
      expect(warnings.join('\n')).toMatch(/CACHEKIT_NEXT_OPTIONS\.backend\.type/);
    } finally {
      setLogger(null);
    }
  });

  it('a description builds that backend, one per process for both handlers', async () => {
    const dir = path.join(tmp, 'file-store');
    withCachekit({}, { backend: { type: 'file', cacheDir: dir }, namespace: 'described' });
    const rt = await roundTrip();
    expect(rt).toBe(configuredStack());
    expect(await useCacheHandler.stack()).toBe(rt);
    expect((rt.backend as unknown as FileBackend).cacheDir).toBe(dir);
    expect(existsSync(dir)).toBe(true);
  });

  it('backend: null is L1 only; nothing set is the environment resolution', async () => {
    withCachekit({}, { backend: null });
    expect((await roundTrip()).backend).toBeNull();
    await resetStacks();
    const explicit: Backend = new MemoryBackend();
    setDefaultBackend(explicit);
    withCachekit({});
    await roundTrip();
    expect((explicit as MemoryBackend).size).toBeGreaterThan(0);
  });
});

describe('next.config files loaded by Next itself', () => {
  /** A throwaway app dir whose node_modules link to this package and to Next (`nextDir`). */
  function app(name: string, files: Record<string, string>, nextDir = path.join(root, 'node_modules', 'next')): string {
    const dir = path.join(tmp, name);
    mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
    symlinkSync(root, path.join(dir, 'node_modules', 'cachekit-next'));
    symlinkSync(nextDir, path.join(dir, 'node_modules', 'next'));
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, private: true }));
    for (const [file, text] of Object.entries(files)) writeFileSync(path.join(dir, file), text);
    return dir;
  }

  /** Next's loadConfig in a fresh process in `dir` (as `next build` runs it), plus the environment it left. */
  async function loadLikeNext(dir: string) {
    const script = `
      const loadConfig = require(require.resolve('next/dist/server/config', { paths: [process.cwd()] })).default;
      loadConfig('phase-production-build', process.cwd()).then((c) => console.log(JSON.stringify({
        cacheHandler: c.cacheHandler, cacheHandlers: c.cacheHandlers, experimental: c.experimental.cacheHandlers,
        cacheMaxMemorySize: c.cacheMaxMemorySize, options: JSON.parse(process.env.CACHEKIT_NEXT_OPTIONS),
      })), (e) => { console.error(e); process.exit(1); });`;
    const env: NodeJS.ProcessEnv = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };
    delete env[OPTIONS_ENV];
    const { stdout } = await execFileAsync(process.execPath, ['-e', script], { cwd: dir, env, timeout: 60_000 });
    return JSON.parse(stdout.trim().split('\n').pop()!) as {
      cacheHandler: string;
      cacheHandlers?: Record<string, string>;
      experimental?: Record<string, string>;
      cacheMaxMemorySize: number;
      options: Record<string, unknown>;
    };
  }

  const expectHandlers = (handlers: Record<string, string> | undefined) => {
    expect(handlers?.default).toBe(path.join(dist, 'use-cache.cjs'));
    expect(handlers?.remote).toBe(path.join(dist, 'use-cache.cjs'));
  };
  const backendFile =
    'export default { get: async () => null, set: async () => {}, delete: async () => false, exists: async () => false, healthCheck: async () => [true, { latency_ms: 0, backend_type: "noop" }] };\n';

  it('next.config.js (CommonJS, require)', async () => {
    const dir = app('js-app', {
      'next.config.js': `const { withCachekit } = require('cachekit-next/config');\nmodule.exports = withCachekit({ poweredByHeader: false }, { namespace: 'js-app', backend: { type: 'file', cacheDir: './store' } });\n`,
    });
    const loaded = await loadLikeNext(dir);
    expect(loaded.cacheHandler).toBe(path.join(dist, 'handler.cjs'));
    expectHandlers(loaded.cacheHandlers);
    expect(loaded.cacheMaxMemorySize).toBe(0);
    expect(loaded.options).toEqual({ namespace: 'js-app', backend: { type: 'file', cacheDir: path.join(realpathSync(dir), 'store') } });
  });

  it('next.config.mjs (ESM, import) with a backend module', async () => {
    const dir = app('mjs-app', {
      'next.config.mjs': `import { withCachekit } from 'cachekit-next/config';\nexport default withCachekit({}, { namespace: 'mjs-app', backend: './cachekit.backend.mjs' });\n`,
      'cachekit.backend.mjs': backendFile,
    });
    const loaded = await loadLikeNext(dir);
    expect(loaded.cacheHandler).toBe(path.join(dist, 'handler.cjs'));
    expectHandlers(loaded.cacheHandlers);
    expect(loaded.options).toEqual({ namespace: 'mjs-app', backend: { module: path.join(realpathSync(dir), 'cachekit.backend.mjs') } });
  });

  it('next.config.ts (transpiled by Next to CommonJS)', async () => {
    const dir = app('ts-app', {
      'next.config.ts': `import type { NextConfig } from 'next';\nimport { withCachekit } from 'cachekit-next/config';\nconst config: NextConfig = { poweredByHeader: false };\nexport default withCachekit(config, { namespace: 'ts-app', timeoutMs: 800, backend: null });\n`,
    });
    const loaded = await loadLikeNext(dir);
    expect(loaded.cacheHandler).toBe(path.join(dist, 'handler.cjs'));
    expectHandlers(loaded.cacheHandlers);
    expect(loaded.options).toEqual({ namespace: 'ts-app', timeoutMs: 800, backend: null });
  });

  it("a bad option fails Next's config loading with the option named", async () => {
    const dir = app('bad-app', {
      'next.config.mjs': `import { withCachekit } from 'cachekit-next/config';\nexport default withCachekit({}, { maxTtlSeconds: -5 });\n`,
    });
    await expect(loadLikeNext(dir)).rejects.toThrow(/option `maxTtlSeconds` must be >= 1/);
  });

  it("Next 15 (by the app's installed version): experimental.cacheHandlers", async () => {
    // A stand-in `next` that only has its package.json: withCachekit reads the version, nothing else.
    const fake = path.join(tmp, 'next15');
    mkdirSync(fake, { recursive: true });
    writeFileSync(path.join(fake, 'package.json'), JSON.stringify({ name: 'next', version: '15.5.29' }));
    const dir = app('n15-app', {}, fake);
    const script = `const { withCachekit } = require('cachekit-next/config'); console.log(JSON.stringify(withCachekit({ experimental: { useCache: true } })));`;
    const { stdout } = await execFileAsync(process.execPath, ['-e', script], { cwd: dir, timeout: 30_000 });
    const config = JSON.parse(stdout) as { cacheHandlers?: unknown; experimental: { useCache: boolean; cacheHandlers: Record<string, string> } };
    expect(config.cacheHandlers).toBeUndefined();
    expect(config.experimental.useCache).toBe(true);
    expectHandlers(config.experimental.cacheHandlers);
  });
});
