/**
 * `withCachekit(nextConfig, options)`: wires both cache handlers into a Next.js config and carries the options to
 * every process that loads them.
 *
 *   // next.config.ts (or .mjs, or .js with require)
 *   import { withCachekit } from 'cachekit-next/config';
 *   export default withCachekit({ reactStrictMode: true }, { backend: './cachekit.backend.mjs', namespace: 'shop' });
 *
 * Next evaluates next.config in `next build` and `next start`, and its build workers inherit that process's
 * environment: so the options travel as JSON in `CACHEKIT_NEXT_OPTIONS`, which the default handler modules read.
 * With `output: 'standalone'` (whose server.js never evaluates next.config) they are also written, without secrets,
 * into the project for the generated handler modules Next then loads (built-options.ts).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isBackend } from '../protocol/backend.js';
import { logger } from '../shared/log.js';
import { assertKnownOptions, ConfigError, describe } from '../shared/options.js';
import { singleton } from '../shared/registry.js';
import { validateBackendSpec, type BackendDescription, type BackendSpec } from '../stack/backend-spec.js';
import { isGeneratedHandler, writeBuiltHandlers } from '../stack/built-options.js';
import { OPTIONS_ENV, validateOptions, type CachekitNextOptions, type ConfiguredOptions } from '../stack/stack.js';
import { knownNames } from '../shared/option-schema.js';
import { WITH_CACHEKIT_OPTIONS } from '../stack/vocabulary.js';
import { processEnv } from '../shared/env.js';

export type { BackendDescription } from '../stack/backend-spec.js';

export interface WithCachekitOptions extends Omit<CachekitNextOptions, 'backend' | 'onError' | 'encryption'> {
  /**
   * Encrypts every entry; the key comes from CACHEKIT_MASTER_KEY (never from next.config, whose options are put in
   * every process's environment). `{ failClosed }` tunes it; the tenant is the top-level `tenant`. @default false
   */
  encryption?: boolean | { failClosed?: boolean /** @deprecated use the top-level `tenant` */; tenant?: string };
  /**
   * The L2, in a form that reaches Next's worker processes:
   * - a module of yours: a path relative to the app directory (`'./cachekit.backend.mjs'`), an absolute path or a
   *   `file:` URL. It default-exports a backend (or a function returning one, possibly async) or calls
   *   `setDefaultBackend(...)`; each process imports it once, before its first cache call.
   * - a description of a built-in backend: `{ type: 'redis', url }`, `{ type: 'memcached', servers }`,
   *   `{ type: 'file', cacheDir }` (relative to the app directory), `{ type: 'cachekitio' }` (other keys: the
   *   backend's constructor options; keep secrets in the environment, e.g. `CACHEKIT_API_KEY`).
   * - `null`: L1 only, nothing shared.
   * @default the environment (`CACHEKIT_REDIS_URL`, ...), else the embedded File backend under `.next/cache/cachekit`
   */
  backend?: string | URL | BackendDescription | null;
}

/** The Next.js config keys `withCachekit` sets. */
export interface CachekitNextConfig {
  cacheHandler?: string;
  cacheHandlers?: Record<string, string | undefined>;
  cacheMaxMemorySize?: number;
  serverExternalPackages?: string[];
  experimental?: Record<string, unknown>;
}

type ConfigFunction<T> = (phase: string, context: { defaultConfig: object }) => T | Promise<T>;

const COMPONENT = 'withCachekit';
const KNOWN = knownNames(WITH_CACHEKIT_OPTIONS);

/**
 * Sets `cacheHandler` and `cacheHandlers.default`/`.remote` (`experimental.cacheHandlers` on Next 15) to the absolute
 * paths of this package's handler modules and `cacheMaxMemorySize: 0`, validates `options` (a ConfigError names the
 * option) and puts them in `process.env.CACHEKIT_NEXT_OPTIONS`. A config that already sets one of those keys to
 * something else is refused with a ConfigError naming the key: two cache handlers cannot both be in charge.
 * `nextConfig` may be an object or Next's config function (`(phase, { defaultConfig }) => config`).
 */
export function withCachekit<T extends object>(nextConfig: ConfigFunction<T>, options?: WithCachekitOptions): ConfigFunction<T & CachekitNextConfig>;
export function withCachekit<T extends object>(nextConfig: T, options?: WithCachekitOptions): T & CachekitNextConfig;
export function withCachekit<T extends object>(
  nextConfig: T | ConfigFunction<T> = {} as T,
  options: WithCachekitOptions = {},
): (T & CachekitNextConfig) | ConfigFunction<T & CachekitNextConfig> {
  const serialised = serialisedOptions(options);
  const env = processEnv();
  const previous = env[OPTIONS_ENV];
  const holder = singleton<{ written?: string }>('withCachekitOptions', () => ({}));
  if (previous !== undefined && previous !== serialised && previous !== holder.written) {
    // Set by hand (not by an earlier evaluation of next.config in this process or its parent): it loses.
    // (Its value is not printed: it may hold a credential.)
    logger().warn(`[cachekit] withCachekit replaces the ${OPTIONS_ENV} set in the environment with the options given in next.config`);
  }
  // Set now (not only when Next calls a config function): whatever Next forks after evaluating the file inherits it.
  env[OPTIONS_ENV] = holder.written = serialised;
  if (typeof nextConfig === 'function') {
    return async (phase, context) => {
      env[OPTIONS_ENV] = serialised;
      return applyTo(await (nextConfig as ConfigFunction<T>)(phase, context), serialised);
    };
  }
  if (nextConfig === null || typeof nextConfig !== 'object' || Array.isArray(nextConfig)) {
    throw new ConfigError(COMPONENT, 'nextConfig', `must be a Next.js config object or function, got ${describe(nextConfig)}`);
  }
  return applyTo(nextConfig, serialised);
}

/** The paths Next gets: this package's own handler modules, resolved from the installed package. */
export function handlerPaths(): { cacheHandler: string; useCacheHandler: string } {
  // Self-reference by package name from this very file: the installed copy (never a copy elsewhere on the machine).
  const resolve = createRequire(ownFile()).resolve;
  return { cacheHandler: resolve('cachekit-next/handler'), useCacheHandler: resolve('cachekit-next/use-cache') };
}

/**
 * This module's file. In the CommonJS build tsup rewrites `import.meta.url` to this file's own `__filename` (a bare
 * `__filename` check would not do in ESM: the main script of `node -e` defines a global one).
 */
function ownFile(): string {
  return fileURLToPath(import.meta.url);
}

function applyTo<T extends object>(nextConfig: T, serialised: string): T & CachekitNextConfig {
  const user = nextConfig as CachekitNextConfig & { output?: unknown };
  // output: 'standalone': server.js never evaluates next.config, so the handlers are modules that carry the options.
  const { cacheHandler, useCacheHandler } = user.output === 'standalone' ? writeBuiltHandlers(serialised, process.cwd()) : handlerPaths();
  const ours = (value: unknown, target: string) =>
    value === undefined || value === null || samePath(value, target) || (typeof value === 'string' && isGeneratedHandler(value));

  if (!ours(user.cacheHandler, cacheHandler)) {
    throw new ConfigError(
      COMPONENT,
      'cacheHandler',
      `is already set to ${describe(user.cacheHandler)}; withCachekit sets it to cachekit-next's handler: remove it, or configure the handler by hand instead of withCachekit`,
    );
  }
  if (user.cacheMaxMemorySize !== undefined && user.cacheMaxMemorySize !== 0) {
    throw new ConfigError(
      COMPONENT,
      'cacheMaxMemorySize',
      `is set to ${describe(user.cacheMaxMemorySize)}; it must be 0 (Next's own in-memory layer would shadow the shared store): remove it`,
    );
  }
  const experimental = (user.experimental ?? {}) as { cacheHandlers?: Record<string, string | undefined> };
  // Where the 'use cache' handlers go: where the user keeps theirs, else top level (16+) or experimental (15).
  const inExperimental = experimental.cacheHandlers !== undefined || (user.cacheHandlers === undefined && nextMajor() < 16);
  const where = inExperimental ? 'experimental.cacheHandlers' : 'cacheHandlers';
  const existing = (inExperimental ? experimental.cacheHandlers : user.cacheHandlers) ?? {};
  if (typeof existing !== 'object' || Array.isArray(existing)) {
    throw new ConfigError(COMPONENT, where, `must be an object, got ${describe(existing)}`);
  }
  for (const kind of ['default', 'remote'] as const) {
    if (!ours(existing[kind], useCacheHandler)) {
      throw new ConfigError(
        COMPONENT,
        `${where}.${kind}`,
        `is already set to ${describe(existing[kind])}; withCachekit sets it to cachekit-next's 'use cache' handler: remove it`,
      );
    }
  }
  const handlers = { ...existing, default: useCacheHandler, remote: useCacheHandler };
  const external = user.serverExternalPackages ?? [];
  if (!Array.isArray(external)) throw new ConfigError(COMPONENT, 'serverExternalPackages', `must be an array, got ${describe(external)}`);
  return {
    ...nextConfig,
    cacheHandler,
    cacheMaxMemorySize: 0,
    // App code that imports cachekit-next (cache, cachedFetch) must load it from node_modules: its LZ4 is a native
    // addon the bundler cannot place, and one copy per process keeps one L1.
    serverExternalPackages: external.includes('cachekit-next') ? external : [...external, 'cachekit-next'],
    ...(inExperimental ? { experimental: { ...user.experimental, cacheHandlers: handlers } } : { cacheHandlers: handlers }),
  };
}

/** Validates `options` and returns them as `CACHEKIT_NEXT_OPTIONS` holds them. */
function serialisedOptions(options: WithCachekitOptions): string {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ConfigError(COMPONENT, 'options', `must be an object, got ${describe(options)}`);
  }
  if ('onError' in options && options.onError !== undefined) {
    throw new ConfigError(
      COMPONENT,
      'onError',
      "is a function, which cannot reach Next's worker processes: use a handler module of your own with createCacheHandler({ onError }) instead",
    );
  }
  assertKnownOptions(COMPONENT, options, KNOWN);
  const encryption = options.encryption as Record<string, unknown> | undefined;
  for (const secret of ['masterKey', 'previousMasterKeys'] as const) {
    if (encryption && typeof encryption === 'object' && encryption[secret] !== undefined) {
      throw new ConfigError(
        COMPONENT,
        `encryption.${secret}`,
        "would be copied into every process's environment (CACHEKIT_NEXT_OPTIONS) and into config files: set CACHEKIT_MASTER_KEY (and CACHEKIT_PREVIOUS_MASTER_KEYS) instead",
      );
    }
  }
  const { backend, ...rest } = options;
  validateOptions(rest);
  const configured: ConfiguredOptions = { ...rest };
  const spec = backendSpec(backend);
  if (spec !== undefined) configured.backend = spec;
  return JSON.stringify(configured);
}

function backendSpec(backend: WithCachekitOptions['backend']): BackendSpec | undefined {
  if (backend === undefined || backend === null) return backend;
  if (typeof backend === 'string' || backend instanceof URL) return { module: backendModulePath(backend) };
  if (typeof backend !== 'object' || Array.isArray(backend)) {
    throw new ConfigError(COMPONENT, 'backend', `must be a module path, a description such as { type: 'redis', url }, or null, got ${describe(backend)}`);
  }
  if (isBackend(backend)) {
    throw new ConfigError(
      COMPONENT,
      'backend',
      "is a backend object, which cannot reach Next's worker processes: create it in a module of yours and pass the module's path, e.g. backend: './cachekit.backend.mjs'",
    );
  }
  const description = { ...(backend as BackendDescription) };
  if (description.type === 'file' && typeof description.cacheDir === 'string' && description.cacheDir !== '') {
    description.cacheDir = path.resolve(description.cacheDir); // the app directory: `next start` runs elsewhere-relative code
  }
  validateBackendSpec(description, 'backend');
  return description;
}

/** The absolute path of a backend module: relative paths are the app directory's (where `next` runs). */
function backendModulePath(specifier: string | URL): string {
  let file: string;
  try {
    file = specifier instanceof URL || specifier.startsWith('file:') ? fileURLToPath(specifier) : path.resolve(specifier);
  } catch (error) {
    throw new ConfigError(COMPONENT, 'backend', `is not a usable module path or file URL: ${(error as Error).message}`);
  }
  if (!existsSync(file) || !statSync(file).isFile()) {
    throw new ConfigError(
      COMPONENT,
      'backend',
      `names the module ${file}, which does not exist (relative paths are resolved against the app directory, ${process.cwd()})`,
    );
  }
  return file;
}

function samePath(value: unknown, target: string): boolean {
  if (typeof value !== 'string') return false;
  const file = value.startsWith('file:') ? fileURLToPath(value) : path.resolve(value);
  // Either build of the same handler (handler.js or handler.cjs) is ours too.
  const strip = (p: string) => p.replace(/\.c?js$/, '');
  return strip(file) === strip(target);
}

/** The major version of the app's Next.js, or 16 when it cannot be found. */
function nextMajor(): number {
  try {
    const file = createRequire(path.join(process.cwd(), 'package.json')).resolve('next/package.json');
    const version = (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? '';
    return Number.parseInt(version, 10) || 16;
  } catch {
    return 16;
  }
}
