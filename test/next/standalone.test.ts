/**
 * `withCachekit` under `output: 'standalone'`, whose server.js never evaluates next.config: the options are written
 * (without secrets) next to two generated handler modules, which Next loads by the paths withCachekit sets. Checked
 * with Next's own loadConfig and output file tracer, and in fresh processes that have only the generated files and
 * the environment a container would have. Needs the built package (`npm run build`).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { RedisBackend } from '../../src/backends/redis.js';
import { ConfigError } from '../../src/shared/options.js';
import { withCachekit, type WithCachekitOptions } from '../../src/next/config.js';
import { configuredStack, OPTIONS_ENV, resetStacks } from '../../src/stack/stack.js';
import { startRedis } from '../support/servers.js';

const execFileAsync = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const tmp = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'ck-standalone-')));
const savedOptions = process.env[OPTIONS_ENV];
const GENERATED = /node_modules\/\.cache\/cachekit-next\/[0-9a-f]{16}\/(handler|use-cache)\.cjs$/;

afterEach(async () => {
  if (savedOptions === undefined) delete process.env[OPTIONS_ENV];
  else process.env[OPTIONS_ENV] = savedOptions;
  vi.unstubAllEnvs();
  await resetStacks();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A throwaway app dir whose node_modules link to this package and to Next. */
function app(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
  symlinkSync(root, path.join(dir, 'node_modules', 'cachekit-next'));
  symlinkSync(path.join(root, 'node_modules', 'next'), path.join(dir, 'node_modules', 'next'));
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, private: true }));
  for (const [file, text] of Object.entries(files)) writeFileSync(path.join(dir, file), text);
  return dir;
}

/** Runs `script` in a fresh Node process in `dir` with exactly `env` (plus PATH): a container's view. */
async function run(dir: string, script: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, ['-e', script], { cwd: dir, env: { PATH: process.env.PATH, ...env }, timeout: 60_000 });
  return stdout.trim().split('\n').pop()!;
}

/** Next's loadConfig in a fresh process in `dir`, as `next build` runs it. */
async function loadLikeNext(dir: string): Promise<{ cacheHandler: string; cacheHandlers: Record<string, string>; options: unknown }> {
  const script = `
    const loadConfig = require(require.resolve('next/dist/server/config', { paths: [process.cwd()] })).default;
    loadConfig('phase-production-build', process.cwd()).then((c) => console.log(JSON.stringify({
      cacheHandler: c.cacheHandler, cacheHandlers: c.cacheHandlers, options: JSON.parse(process.env.CACHEKIT_NEXT_OPTIONS),
    })), (e) => { console.error(e); process.exit(1); });`;
  return JSON.parse(await run(dir, script, { NEXT_TELEMETRY_DISABLED: '1' })) as never;
}

const backendModule =
  'export default { get: async () => null, set: async () => {}, delete: async () => false, exists: async () => false, healthCheck: async () => [true, { latency_ms: 0, backend_type: "noop" }] };\n';

describe("withCachekit with output: 'standalone'", () => {
  it('points cacheHandler and cacheHandlers at generated modules inside the project, next to the options they carry', async () => {
    const dir = app('sa-app', {
      'next.config.mjs': `import { withCachekit } from 'cachekit-next/config';\nexport default withCachekit({ output: 'standalone' }, { namespace: 'sa-app', l1: { maxSizeMb: 8 }, backend: { type: 'redis', url: 'redis://cache:6379' } });\n`,
    });
    const loaded = await loadLikeNext(dir);
    expect(loaded.cacheHandler).toMatch(GENERATED);
    expect(loaded.cacheHandler.startsWith(path.join(dir, 'node_modules', '.cache', 'cachekit-next'))).toBe(true);
    expect(loaded.cacheHandlers.default).toBe(path.join(path.dirname(loaded.cacheHandler), 'use-cache.cjs'));
    expect(loaded.cacheHandlers.remote).toBe(loaded.cacheHandlers.default);
    const options = { namespace: 'sa-app', l1: { maxSizeMb: 8 }, backend: { type: 'redis', url: 'redis://cache:6379' } };
    expect(loaded.options).toEqual(options); // next build's own workers still get them in the environment
    expect(JSON.parse(readFileSync(path.join(path.dirname(loaded.cacheHandler), 'options.json'), 'utf8'))).toEqual(options);
  });

  it('a process that never evaluated next.config gets the options from the generated module Next imports', async () => {
    const dir = app('sa-import', {});
    process.chdir(dir);
    let paths: { cacheHandler?: string; cacheHandlers?: Record<string, string | undefined> };
    try {
      paths = withCachekit({ output: 'standalone' }, { namespace: 'sa-import', keyPrefix: 'ck:', backend: null });
    } finally {
      process.chdir(root);
    }
    for (const [file, kind] of [
      [paths.cacheHandler!, 'legacy'],
      [paths.cacheHandlers!.default!, 'use-cache'],
    ] as const) {
      // What Next does with a handler path: interopDefault(await import(file)).
      const script = `import(${JSON.stringify(file)}).then((m) => {
        const handler = m.default.default || m.default;
        const stack = ${kind === 'legacy' ? 'handler.stack()' : "require('cachekit-next/handler').default.stack()"};
        console.log(JSON.stringify({ env: process.env.CACHEKIT_NEXT_OPTIONS, get: typeof (handler.prototype?.get ?? handler.get), namespace: stack.namespace, keyPrefix: stack.keyPrefix, backend: stack.backend }));
      })`;
      const seen = JSON.parse(await run(dir, script)) as Record<string, unknown>;
      expect(seen, kind).toEqual({
        env: JSON.stringify({ namespace: 'sa-import', keyPrefix: 'ck:', backend: null }),
        get: 'function',
        namespace: 'sa-import',
        keyPrefix: 'ck:',
        backend: null,
      });
    }
  });

  it('a loader that runs before any handler module is imported finds the options through the standalone config', async () => {
    const dir = app('sa-early', {});
    process.chdir(dir);
    let handler: string;
    try {
      handler = withCachekit({ output: 'standalone' }, { namespace: 'sa-early-ns', backend: null }).cacheHandler!;
    } finally {
      process.chdir(root);
    }
    // As server.js sets it: the config with handler paths relative to distDir.
    const standaloneConfig = JSON.stringify({ distDir: './.next', cacheHandler: path.relative(path.join(dir, '.next'), handler), cacheHandlers: {} });
    const script = `const { default: Handler } = require('cachekit-next/handler');
      console.log(JSON.stringify({ namespace: Handler.stack().namespace, env: process.env.CACHEKIT_NEXT_OPTIONS }));`;
    expect(JSON.parse(await run(dir, script, { __NEXT_PRIVATE_STANDALONE_CONFIG: standaloneConfig }))).toEqual({
      namespace: 'sa-early-ns',
      env: JSON.stringify({ namespace: 'sa-early-ns', backend: null }),
    });
    // Without generated modules (a zero-config standalone server): the environment decides, as before.
    expect(
      JSON.parse(
        await run(dir, script, {
          __NEXT_PRIVATE_STANDALONE_CONFIG: JSON.stringify({ distDir: './.next', cacheHandler: '../node_modules/cachekit-next/dist/handler.cjs' }),
        }),
      ).namespace,
    ).toBe('sa-early');
  });

  it('the built options win over a different CACHEKIT_NEXT_OPTIONS set by hand, with a warning that does not print it', async () => {
    const dir = app('sa-precedence', {});
    process.chdir(dir);
    let handler: string;
    try {
      handler = withCachekit({ output: 'standalone' }, { namespace: 'built', backend: null }).cacheHandler!;
    } finally {
      process.chdir(root);
    }
    const script = `import(${JSON.stringify(handler)}).then((m) => console.log(JSON.stringify({ namespace: (m.default.default || m.default).stack().namespace })))`;
    const { stdout, stderr } = await execFileAsync(process.execPath, ['-e', script], {
      cwd: dir,
      env: { PATH: process.env.PATH, [OPTIONS_ENV]: JSON.stringify({ namespace: 'by-hand', backend: null }) },
    });
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toEqual({ namespace: 'built' });
    expect(stderr).toMatch(/options built into this app by withCachekit replace the CACHEKIT_NEXT_OPTIONS/);
    expect(stderr).not.toContain('by-hand');
  });

  it('output file tracing of a generated module finds the options, this package, its native LZ4 and a backend module', async () => {
    const dir = app('sa-trace', { 'cachekit.backend.mjs': backendModule });
    process.chdir(dir);
    let config: ReturnType<typeof withCachekit<object>>;
    try {
      config = withCachekit({ output: 'standalone' }, { backend: './cachekit.backend.mjs', namespace: 'sa-trace' });
    } finally {
      process.chdir(root);
    }
    const generated = path.dirname(config.cacheHandler!);
    // Stored relative to the generated directory: the standalone folder has another absolute path.
    expect(JSON.parse(readFileSync(path.join(generated, 'options.json'), 'utf8')).backend).toEqual({ module: '../../../../cachekit.backend.mjs' });
    const { nodeFileTrace } = createRequire(import.meta.url)('next/dist/compiled/@vercel/nft') as {
      nodeFileTrace(files: string[], options: { base: string }): Promise<{ fileList: Set<string> }>;
    };
    for (const entry of [config.cacheHandler!, config.cacheHandlers!.default!]) {
      const traced = [...(await nodeFileTrace([entry], { base: '/' })).fileList].map((f) => `/${f}`);
      expect(traced).toContain(path.join(generated, 'options.json'));
      expect(traced).toContain(path.join(dir, 'cachekit.backend.mjs'));
      expect(traced.some((f) => f.startsWith(path.join(root, 'dist')) && /(handler|use-cache)\.cjs$/.test(f))).toBe(true);
      expect(traced.some((f) => f.endsWith('.node') && f.includes('lz4-napi'))).toBe(true);
    }
    // And a process elsewhere (the shipped folder) imports the module from its new place.
    const script = `import(${JSON.stringify(config.cacheHandler!)}).then(async (m) => {
      const stack = await (m.default.default || m.default).stack();
      console.log(JSON.stringify({ namespace: stack.namespace, backend: (await stack.backend.healthCheck())[1].backend_type }));
    })`;
    expect(JSON.parse(await run(dir, script))).toEqual({ namespace: 'sa-trace', backend: 'noop' });
  });

  describe('secrets are never written: refused, naming the field, only under standalone', () => {
    const cases: [string, WithCachekitOptions['backend'], RegExp][] = [
      ['a password in the Redis URL', { type: 'redis', url: 'redis://:s3cret@cache:6379' }, /`backend\.url` holds a password/],
      ['a user and password in the Redis URL', { type: 'redis', url: 'rediss://app:s3cret@cache:6380' }, /`backend\.url` holds a password/],
      ['a password option', { type: 'redis', url: 'redis://cache:6379', password: 's3cret' }, /`backend\.password` is a secret/],
      ['a Sentinel password', { type: 'redis', sentinels: ['s:26379'], name: 'm', sentinelPassword: 's3cret' }, /`backend\.sentinelPassword` is a secret/],
      ['a password in a Redis Cluster node URL', { type: 'redis', nodes: ['redis://:s3cret@n1:6379'] }, /`backend\.nodes\[0\]` holds a password/],
      [
        'a TLS private key',
        { type: 'redis', url: 'rediss://cache:6380', tls: { key: '-----BEGIN PRIVATE KEY-----s3cret' } },
        /`backend\.tls\.key` is a secret/,
      ],
      ['an API key', { type: 'cachekitio', apiKey: 'ck_live_s3cret' }, /`backend\.apiKey` is a secret/],
    ];
    for (const [what, backend, message] of cases) {
      it(what, () => {
        let error: unknown;
        try {
          withCachekit({ output: 'standalone' }, { backend });
        } catch (caught) {
          error = caught;
        }
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as Error).message).toMatch(message);
        expect((error as Error).message).not.toContain('s3cret');
        expect((error as Error).message).toMatch(/CACHEKIT_REDIS_URL/);
        // `next start` keeps them in the environment only, as before.
        expect(() => withCachekit({}, { backend })).not.toThrow();
      });
    }
  });

  it('a Redis description without url takes it (and its password) from the environment where the server runs', async () => {
    const redis = await startRedis();
    try {
      const dir = app('sa-redis-env', {});
      process.chdir(dir);
      try {
        withCachekit({ output: 'standalone' }, { backend: { type: 'redis', commandTimeoutMs: 800 }, namespace: 'sa-redis-env' });
      } finally {
        process.chdir(root);
      }
      expect(existsSync(path.join(dir, 'node_modules', '.cache', 'cachekit-next'))).toBe(true);
      vi.stubEnv('CACHEKIT_REDIS_URL', redis.url);
      const stack = await configuredStack();
      expect(stack.backend).toBeInstanceOf(RedisBackend);
      await stack.backend!.set('sa-probe', new Uint8Array([1, 2, 3]), 60);
      expect(Array.from((await stack.backend!.get('sa-probe'))!)).toEqual([1, 2, 3]);
    } finally {
      await resetStacks();
      await redis.stop();
    }
  });
});
