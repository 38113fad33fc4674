import { rmSync } from 'node:fs';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { Redis } from 'ioredis';
import { expect, test, type APIRequestContext } from '@playwright/test';
import { startRedis } from '../test/support/servers.js';
import { appDir, buildApp, installApp, shipStandalone, startDataServer, startStandalone, type NextServer } from './support/apps.js';

// examples/docker as its Dockerfile ships it: `output: 'standalone'` built once, `.next/standalone` (+ static, public)
// copied into two directories as two containers hold it, the build folder and everything next.config generated
// removed, then `node server.js` in each with PORT and HOSTNAME and the app's own settings: no CACHEKIT_* variable
// for the withCachekit setup, CACHEKIT_REDIS_URL alone for the zero-config one. One Redis for both.
test.describe.configure({ mode: 'serial' });

const APP = 'docker';
let redis: Awaited<ReturnType<typeof startRedis>>;
let client: Redis;
let upstream: Awaited<ReturnType<typeof startDataServer>>;

test.beforeAll(async () => {
  test.setTimeout(300_000);
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  upstream = await startDataServer();
  await installApp(APP);
});

test.afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
  await upstream?.stop();
});

async function keys(): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'COUNT', 1000);
    found.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return found;
}

interface Rendering {
  cache: string | undefined;
  renderedAt: string;
  catalog: string;
  upstream: string;
}

async function read(request: APIRequestContext, url: string): Promise<Rendering> {
  const response = await request.get(`${url}/`);
  expect(response.status(), url).toBe(200);
  const html = await response.text();
  const pick = (id: string) => html.match(new RegExp(`id="${id}">([^<]*)<`))?.[1] ?? '';
  return { cache: response.headers()['x-nextjs-cache'], renderedAt: pick('rendered-at'), catalog: pick('catalog'), upstream: pick('upstream') };
}

/**
 * A cachekit-next frame (src/wire/frame.ts): magic, flags (1 deflate, 2 LZ4 with its u32 LE size first, 4 CRC-32),
 * then the body. Returns how it is compressed, the stored and the uncompressed (MessagePack) size.
 */
function frameSizes(bytes: Buffer): { algorithm: string; stored: number; payload: number } {
  expect(bytes.subarray(0, 2).toString('hex'), 'cachekit-next frame magic').toBe('c44b');
  const flags = bytes[2]! & ~4;
  const body = bytes.subarray(bytes[2]! & 4 ? 7 : 3);
  const algorithm = flags === 2 ? 'lz4' : flags === 1 ? 'deflate' : 'none';
  const payload = flags === 2 ? body.readUInt32LE(0) : flags === 1 ? inflateRawSync(body).length : body.length;
  return { algorithm, stored: bytes.length, payload };
}

interface Shape {
  /** The environment of `next build` (what next.config reads at build time). */
  buildEnv: () => NodeJS.ProcessEnv;
  /** The environment of each `node server.js`, besides PORT and HOSTNAME. */
  runEnv: () => NodeJS.ProcessEnv;
  namespace: string;
}

function standalone(name: string, distDir: string, buildId: string, shape: Shape): void {
  test.describe(name, () => {
    const dirs: string[] = [];
    let a: NextServer;
    let b: NextServer;

    test.beforeAll(async () => {
      test.setTimeout(300_000);
      await client.flushall();
      await buildApp(APP, { distDir, buildId, env: shape.buildEnv() });
      dirs.push(shipStandalone(APP, distDir, 'ck-e2e-standalone-a-'), shipStandalone(APP, distDir, 'ck-e2e-standalone-b-'));
      // The build folder and the modules withCachekit generated are not shipped: the servers have only their copy.
      rmSync(path.join(appDir(APP), distDir), { recursive: true, force: true });
      rmSync(path.join(appDir(APP), 'node_modules', '.cache', 'cachekit-next'), { recursive: true, force: true });
      [a, b] = await Promise.all(dirs.map((dir) => startStandalone(dir, shape.runEnv())));
    });

    test.afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    });

    test(`${name}: a page rendered by one copy is a HIT on the other, from the configured store and namespace`, async ({ request }) => {
      const first = await read(request, a.url);
      expect(first.cache).toBe('MISS');
      expect(first.catalog).toMatch(/^[0-9a-f]{8}$/);
      expect(first.upstream).toMatch(/n(&quot;|"):\d+/);
      const onB = await read(request, b.url);
      expect(onB).toEqual({ ...first, cache: 'HIT' });

      const stored = await keys();
      const prefix = `cachekit:${shape.namespace}:`;
      expect(
        stored.filter((key) => !key.startsWith(prefix)),
        `every key under ${prefix}`,
      ).toEqual([]);
      expect(stored, 'the page').toContainEqual(expect.stringMatching(new RegExp(`^cachekit:${shape.namespace}:${buildId}:r:.*/index$`)));
      expect(stored, 'the fetch and unstable_cache entries').toContainEqual(expect.stringMatching(new RegExp(`^cachekit:${shape.namespace}:f:`)));
    });

    test(`${name}: entries are stored LZ4-compressed (the native binding is in the standalone folder)`, async () => {
      const page = (await keys()).find((key) => key.includes(`:${buildId}:r:`) && key.endsWith('/index'))!;
      const sizes = frameSizes((await client.getBuffer(page))!);
      console.log(`[e2e] ${name}: page entry stored in ${sizes.stored} bytes (${sizes.algorithm}) for ${sizes.payload} bytes of MessagePack`);
      // LZ4 (the default) needs the native binding: without it, entries are written with deflate.
      expect(sizes.algorithm).toBe('lz4');
      expect(sizes.stored).toBeLessThan(sizes.payload);
    });

    test(`${name}: revalidateTag on one copy makes the other render the page and its data anew`, async ({ request }) => {
      const before = await read(request, b.url);
      const response = await request.post(`${a.url}/api/revalidate?tag=catalog`);
      expect(response.status()).toBe(200);
      // Redis carries the invalidation message: B drops its L1 copy as soon as it arrives.
      await expect.poll(async () => (await read(request, b.url)).renderedAt, { timeout: 10_000 }).not.toBe(before.renderedAt);
      const after = await read(request, b.url);
      expect(after.catalog).not.toBe(before.catalog);
      expect(after.upstream).not.toBe(before.upstream);
      await expect.poll(async () => (await read(request, a.url)).renderedAt, { timeout: 10_000 }).toBe(after.renderedAt);
    });

    test(`${name}: neither server logged anything from cachekit (no fallback, no missing native module, no fault)`, () => {
      for (const server of [a, b]) expect(server.log()).not.toMatch(/\[cachekit\]/);
    });
  });
}

standalone('withCachekit', '.next-e2e-sa', 'e2e-sa-build', {
  // next.config reads REDIS_HOST at build time only; the servers get no cachekit setting at all.
  buildEnv: () => ({ REDIS_HOST: redis.address, UPSTREAM_URL: upstream.url }),
  runEnv: () => ({ UPSTREAM_URL: upstream.url }),
  namespace: 'shop',
});

standalone('zero-config', '.next-e2e-sa-env', 'e2e-sa-env-build', {
  // Handlers by hand in next.config; the build caches into a throwaway File store, the servers into Redis.
  buildEnv: () => ({ EXAMPLE_SETUP: 'env', UPSTREAM_URL: upstream.url, CACHEKIT_FILE_CACHE_DIR: path.join(appDir(APP), '.next-e2e-sa-env', 'build-cache') }),
  runEnv: () => ({ UPSTREAM_URL: upstream.url, CACHEKIT_REDIS_URL: redis.url }),
  namespace: 'cachekit-example-docker',
});
