import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { expect, test, type Page } from '@playwright/test';
import { freePort, startMemcached, startRedis } from '../test/support/servers.js';
import { appDir, buildApp, installApp, startNext, type NextServer } from './support/apps.js';

// examples/with-redis, with-memcached and custom-backend, run as their READMEs say: installed from the packed
// package, built once with their store running, then two `next start` instances on that store, seen in a browser.
test.describe.configure({ mode: 'serial' });

const DIST = '.next-e2e-ex';

/** A store as the test sees it: the environment that points an app at it, and the keys it holds. */
interface Store {
  env: Record<string, string>;
  keys(): Promise<string[]>;
  stop(): Promise<void>;
}

/** The apps' upstream JSON API (a public one by default): a new uuid on every request. */
let upstream: { url: string; stop(): Promise<void> };
test.beforeAll(async () => {
  const server = http.createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ uuid: randomUUID() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/uuid`,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
});
test.afterAll(async () => {
  await upstream?.stop();
});

async function redisStore(): Promise<Store> {
  const redis = await startRedis();
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  return {
    env: { REDIS_URL: redis.url },
    keys: async () => {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await client.scan(cursor, 'MATCH', 'cachekit:*', 'COUNT', 1000);
        keys.push(...batch);
        cursor = next;
      } while (cursor !== '0');
      return keys;
    },
    stop: async () => {
      client.disconnect();
      await redis.stop();
    },
  };
}

/** memcached's own key listing, URL-decoded: `metadump hash` walks the hash table (the LRU walk of `all` may skip items). */
function memcachedKeys(port: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('lru_crawler metadump hash\r\n'));
    let text = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('metadump timed out')));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (!text.endsWith('END\r\n')) return;
      socket.end();
      resolve([...text.matchAll(/^key=(\S+)/gm)].map((m) => decodeURIComponent(m[1]!)));
    });
  });
}

async function memcachedStore(): Promise<Store> {
  const servers = await Promise.all([startMemcached(), startMemcached()]);
  return {
    env: { MEMCACHED_SERVERS: servers.map((s) => s.address).join(',') },
    keys: async () => (await Promise.all(servers.map((s) => memcachedKeys(s.port)))).flat(),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** The example's own kv-server.mjs, as `npm run kv` starts it. */
async function kvStore(): Promise<Store> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [path.join(appDir('custom-backend'), 'kv-server.mjs')], {
    env: { ...process.env, KV_PORT: String(port) },
    stdio: 'ignore',
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  const deadline = Date.now() + 10_000;
  while (
    !(await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`kv-server.mjs did not answer on ${url}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    env: { KV_URL: url },
    keys: async () => (await (await fetch(`${url}/keys`)).json()) as string[],
    stop,
  };
}

interface Rendering {
  cache: string | undefined;
  renderedAt: string;
  upstream: string;
  report: string;
}

/** The example's page as the browser shows it. */
async function read(page: Page, url: string): Promise<Rendering> {
  const response = await page.goto(url);
  expect(response?.status(), url).toBe(200);
  const text = async (id: string) => (await page.locator(`#${id}`).textContent()) ?? '';
  return {
    cache: response!.headers()['x-nextjs-cache'],
    renderedAt: await text('rendered-at'),
    upstream: await text('upstream'),
    report: await text('report'),
  };
}

function example(app: string, buildId: string, startStore: () => Promise<Store>): void {
  test.describe(app, () => {
    const namespace = `cachekit-example-${app}`; // the handlers' default, cache(fn)'s too: the app's package.json name
    const pageKey = new RegExp(`^cachekit:${namespace}:${buildId}:r:.*/index$`);
    let store: Store;
    let a: NextServer;
    let b: NextServer;

    test.beforeAll(async () => {
      test.setTimeout(300_000);
      store = await startStore();
      const env = { ...store.env, UPSTREAM_URL: upstream.url };
      await installApp(app);
      await buildApp(app, { distDir: DIST, buildId, env });
      [a, b] = await Promise.all([startNext(app, { distDir: DIST, env }), startNext(app, { distDir: DIST, env })]);
    });

    test.afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await store?.stop();
    });

    test(`${app}: A and B serve one rendering of the page from the store, which also holds the fetch and cache(fn) entries`, async ({ page }) => {
      // Each instance rendered and stored the page once already (startNext waits for an answer on /), and without
      // invalidation messages (memcached, custom) keeps its own copy in L1 for up to 1 s: then both serve the store's.
      await expect.poll(async () => (await read(page, a.url)).renderedAt === (await read(page, b.url)).renderedAt, { timeout: 10_000 }).toBe(true);
      const onA = await read(page, a.url);
      const onB = await read(page, b.url);
      expect(onA.renderedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(onA.upstream).toMatch(/^[0-9a-f-]{36}$/);
      expect(onA.report).toMatch(/^[0-9a-f]{8}$/);
      expect([onA.cache, onB.cache]).toEqual(['HIT', 'HIT']);
      expect(onB).toEqual(onA);

      const keys = await store.keys();
      expect(keys, 'the page entry').toContainEqual(expect.stringMatching(pageKey));
      expect(keys, 'the fetch entry').toContainEqual(expect.stringMatching(new RegExp(`^cachekit:${namespace}:f:[0-9a-f]{64}$`)));
      expect(keys, 'the cache(fn) entry').toContainEqual(expect.stringMatching(new RegExp(`^cachekit:${namespace}:fn:report:[0-9a-f]{64}$`)));
      for (const server of [a, b]) {
        // No backend fault, and no fallback to the embedded File backend (it announces itself).
        expect(server.log()).not.toMatch(/no backend configured|\[cachekit\]/);
      }
    });

    test(`${app}: revalidateTag from a Server Action on A makes B render the page, the fetch and cache(fn) anew`, async ({ page }) => {
      const before = await read(page, a.url);
      const action = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(a.url));
      await page.locator('#revalidate').click();
      expect((await action).status()).toBe(200);

      // B trusts what it read for at most the invalidation message's delivery (Redis) or 1 s (the others).
      await expect.poll(async () => (await read(page, b.url)).renderedAt, { timeout: 10_000 }).not.toBe(before.renderedAt);
      const onB = await read(page, b.url);
      expect(onB.upstream).not.toBe(before.upstream);
      expect(onB.report).not.toBe(before.report);
      // ...and A serves that same new state: one cache for both.
      await expect.poll(async () => (await read(page, a.url)).report, { timeout: 10_000 }).toBe(onB.report);
      expect(a.log() + b.log()).not.toMatch(/\[cachekit\]/);
    });
  });
}

example('with-redis', 'e2e-ex-redis', redisStore);
example('with-memcached', 'e2e-ex-memcached', memcachedStore);
example('custom-backend', 'e2e-ex-custom', kvStore);
