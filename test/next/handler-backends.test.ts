/**
 * The legacy handler over every built-in backend: every value kind written by one instance is read back exactly by
 * another, and tag events cross instances, on real servers.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CachekitIOBackend } from '../../src/backends/cachekitio.js';
import { FileBackend } from '../../src/backends/file.js';
import { MemcachedBackend } from '../../src/backends/memcached.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { RedisBackend } from '../../src/backends/redis.js';
import { isClosable, type Backend } from '../../src/protocol/backend.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { CacheStack } from '../../src/stack/stack.js';
import type { GetContext, IncrementalCacheValue } from '../../src/wire/next-types.js';
import { FakeCachekitIO } from '../support/fake-cachekitio.js';
import { startMemcached, startRedis, startRedisCluster } from '../support/servers.js';
import { appPage, appRoute, fetchValue, image, pagesPage, redirect } from './fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Buffers as digests (with their class), so multi-megabyte values compare quickly and exactly. */
function digest(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return `Buffer:${createHash('sha256').update(value).digest('hex')}:${value.byteLength}`;
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, digest(v)]));
  if (Array.isArray(value)) return value.map(digest);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, digest(v)]));
  return value;
}
const stops: (() => Promise<void>)[] = [];
const made: Backend[] = [];
let fileDir: string;

const factories: Record<string, () => Promise<() => Backend>> = {
  redis: async () => {
    const server = await startRedis();
    stops.push(() => server.stop());
    return () => new RedisBackend({ url: server.url });
  },
  'redis cluster': async () => {
    const cluster = await startRedisCluster(3);
    stops.push(() => cluster.stop());
    return () => new RedisBackend({ nodes: cluster.nodes });
  },
  memcached: async () => {
    const servers = await Promise.all([startMemcached(), startMemcached()]);
    stops.push(() => Promise.all(servers.map((s) => s.stop())).then(() => {}));
    return () => new MemcachedBackend({ servers: servers.map((s) => s.address), maxItemSizeBytes: 8 * 1024 * 1024 });
  },
  file: async () => () => new FileBackend({ cacheDir: fileDir }),
  cachekitio: async () => {
    const fake = await FakeCachekitIO.start({ apiKeys: ['ck_live_handler'] });
    stops.push(() => fake.stop());
    return () => new CachekitIOBackend({ apiKey: 'ck_live_handler', apiUrl: fake.url, allowCustomHost: true }, {});
  },
  memory: async () => {
    const shared = new MemoryBackend();
    return () => shared;
  },
};

beforeAll(async () => {
  fileDir = await mkdtemp(path.join(os.tmpdir(), 'ck-handler-file-'));
});

afterAll(async () => {
  await Promise.all(made.map((b) => (isClosable(b) ? b.close() : undefined)));
  await Promise.all(stops.map((stop) => stop()));
  await rm(fileDir, { recursive: true, force: true });
});

const cacheControl = { revalidate: 60, expire: 3600 };
const kinds: [string, IncrementalCacheValue, GetContext, Record<string, unknown>][] = [
  ['/route-cache/APP_PAGE/abc/$/blog', appPage(), { kind: 'APP_PAGE' }, { cacheControl }],
  ['/route-cache/APP_ROUTE/def/$/api/items', appRoute(), { kind: 'APP_ROUTE' }, { cacheControl }],
  ['/legacy', pagesPage(), { kind: 'PAGES' }, { cacheControl }],
  ['/redirect', redirect(), { kind: 'PAGES' }, { cacheControl }],
  ['a'.repeat(64), fetchValue(), { kind: 'FETCH', revalidate: 60, tags: ['posts'], softTags: ['_N_T_/blog'] }, { fetchCache: true, tags: ['posts'] }],
  ['img-key', image(), { kind: 'IMAGE' }, { kind: 'IMAGE', cacheControl: { revalidate: 3600 } }],
  ['/big', { ...appPage(), rscData: Buffer.alloc(3 * 1024 * 1024, 0x41) } as IncrementalCacheValue, { kind: 'APP_PAGE' }, { cacheControl }],
];

for (const [name, factory] of Object.entries(factories)) {
  describe(`cache handler on ${name}`, () => {
    let make: () => Backend;
    const instance = (namespace: string) => {
      const backend = make();
      made.push(backend);
      // Two stacks = two instances; coherence messages are not awaited here (they are tested separately).
      const rt = new CacheStack({ backend, namespace, deploymentId: 'd', coherenceTtlSeconds: 0.05 });
      return { rt, handler: () => new (handlerClassFor(() => rt))({}) };
    };

    beforeAll(async () => {
      make = await factory();
    });

    it('every value kind written on A is read back exactly on B', async () => {
      const ns = `kinds-${name.replace(/\W/g, '')}`;
      const a = instance(ns);
      const b = instance(ns);
      for (const [key, value, , setCtx] of kinds) await a.handler().set(key, value, setCtx);
      for (const [key, value, getCtx] of kinds) {
        const got = await b.handler().get(key, getCtx);
        expect(digest(got?.value), `${name}: ${key}`).toEqual(digest(value));
      }
      expect(b.rt.entries.stats().l2Hits).toBe(kinds.length);
    });

    it('tag events from A reach entries read on B', async () => {
      const ns = `tags-${name.replace(/\W/g, '')}`;
      const a = instance(ns);
      const b = instance(ns);
      await a.handler().set('/blog', appPage(), { cacheControl });
      await a.handler().set('f', fetchValue(), { fetchCache: true, tags: ['posts'] });
      expect(await b.handler().get('/blog', { kind: 'APP_PAGE' })).not.toBeNull();
      await sleep(5);
      await a.handler().revalidateTag(['posts'], { expire: 3600 });
      await sleep(100); // past B's coherence TTL (50 ms here)
      const stale = await b.handler().get('/blog', { kind: 'APP_PAGE' });
      expect(stale!.lastModified + 60_000).toBeLessThan(Date.now());
      await a.handler().revalidateTag('posts');
      await sleep(100);
      expect(await b.handler().get('/blog', { kind: 'APP_PAGE' })).toBeNull();
      expect(await b.handler().get('f', { kind: 'FETCH', revalidate: 60, tags: ['posts'] })).toBeNull();
    });
  });
}
