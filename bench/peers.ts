/**
 * The peer handlers, wired outside Next exactly as their READMEs wire them inside it, against a given Redis.
 *
 * - @fortedigital/nextjs-cache-handler: `CacheHandler` + its `redis-strings` handler over node-redis (`@redis/client`;
 *   the package only supports node-redis >= 5). Its configuration is static (one per process).
 * - @trieb.work/nextjs-turbo-redis-cache: `RedisStringsHandler` (what its default export `CachedHandler` wraps as a
 *   process singleton) over node-redis 4.7 (`redis`, its pinned peer). It needs keyspace events ('Exe') on the server.
 * - Next's built-in cache: its FileSystemCache as `next start` builds it (files under the server's dist directory,
 *   flushed to disk, with the 50 MB in-memory LRU of `cacheMaxMemorySize`'s default). Not shared between instances.
 */
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { CacheHandler as ForteCacheHandler } from '@fortedigital/nextjs-cache-handler';
import createForteRedisHandler from '@fortedigital/nextjs-cache-handler/redis-strings';
import { createClient } from '@redis/client';
import { RedisStringsHandler } from '@trieb.work/nextjs-turbo-redis-cache';

/** The legacy cacheHandler surface every contender offers (Next's IncrementalCache calls exactly these). */
export interface LegacyHandler {
  get(key: string, ctx: Record<string, unknown>): Promise<{ lastModified?: number; value: unknown } | null>;
  set(key: string, data: unknown, ctx: Record<string, unknown>): Promise<void>;
  revalidateTag(tags: string | string[], durations?: { expire?: number }): Promise<void>;
}

export interface Peer {
  handler: LegacyHandler;
  /** The Redis key an entry of `key` is stored under. */
  redisKey(key: string): string;
  close(): Promise<void>;
}

let forteConfigured = false;

/** @fortedigital/nextjs-cache-handler 3.3.0 with its `redis-strings` handler (no local layer: it has none in front). */
export async function createForte(url: string, keyPrefix: string): Promise<Peer> {
  if (forteConfigured) throw new Error('forte is configured once per process (static CacheHandler.onCreation)');
  forteConfigured = true;
  const client = createClient({ url });
  await client.connect();
  ForteCacheHandler.onCreation(() => ({ handlers: [createForteRedisHandler({ client: client as never, keyPrefix })] }));
  // A serverDistDir without BUILD_ID or prerender manifest, as on a server whose build did not ship them: it reads
  // both once, tolerates their absence, and nothing else depends on them for APP_PAGE entries.
  const serverDistDir = path.join(mkdtempSync(path.join(os.tmpdir(), 'ck-bench-forte-')), 'server');
  const handler = new ForteCacheHandler({ serverDistDir, dev: false } as never) as unknown as LegacyHandler;
  return {
    handler,
    redisKey: (key) => keyPrefix + key,
    close: async () => {
      await client.quit();
    },
  };
}

export interface TriebOptions {
  /** trieb's in-process read cache of raw GET replies (on by default, kept 10 s). */
  redisGetDeduplication?: boolean;
}

/** @trieb.work/nextjs-turbo-redis-cache 1.18.0's RedisStringsHandler. */
export async function createTrieb(url: string, keyPrefix: string, options: TriebOptions = {}): Promise<Peer> {
  const handler = new RedisStringsHandler({
    redisUrl: url,
    database: 0,
    keyPrefix,
    redisGetDeduplication: options.redisGetDeduplication ?? true,
  });
  // Its maps sync from Redis on startup; its first call waits for that. Wait here so no timing includes it.
  await (handler as unknown as { assertClientIsReady(): Promise<void> }).assertClientIsReady();
  return {
    handler: handler as unknown as LegacyHandler,
    redisKey: (key) => keyPrefix + key,
    close: async () => {
      // It exposes no close; its clients (one command, three subscribers) keep the process alive: the benchmarks exit.
    },
  };
}

/** Next's default `cacheMaxMemorySize` (next/dist/server/config-shared.js). */
export const NEXT_DEFAULT_MEMORY_CACHE_BYTES = 50 * 1024 * 1024;

/**
 * Next's built-in cache handler (FileSystemCache, the one `next start` uses without a `cacheHandler`), constructed as
 * IncrementalCache constructs it: Node's fs, flushed to disk under a fresh dist directory, with its in-memory LRU.
 * Its LRU is a process singleton (sized by the first construction).
 */
export function createNextBuiltIn(maxMemoryCacheSize = NEXT_DEFAULT_MEMORY_CACHE_BYTES): Peer & { serverDistDir: string } {
  const require = createRequire(import.meta.url);
  const FileSystemCache = require('next/dist/server/lib/incremental-cache/file-system-cache.js').default as new (ctx: object) => LegacyHandler;
  const { nodeFs } = require('next/dist/server/lib/node-fs-methods.js') as { nodeFs: object };
  const serverDistDir = path.join(mkdtempSync(path.join(os.tmpdir(), 'ck-bench-next-')), 'server');
  const handler = new FileSystemCache({ fs: nodeFs, flushToDisk: true, serverDistDir, revalidatedTags: [], maxMemoryCacheSize });
  return {
    handler,
    serverDistDir,
    redisKey: () => {
      throw new Error("Next's built-in cache stores nothing in Redis");
    },
    close: async () => {},
  };
}
