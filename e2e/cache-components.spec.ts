import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { startMemcached, startRedis, type ServerHandle } from '../test/support/servers.js';
import { startNext, type NextServer } from './support/apps.js';

const PROBE = fileURLToPath(new URL('./support/prerender-probe.cjs', import.meta.url));

/**
 * Cache Components (`cacheComponents: true`) under `next start`, the scenarios a remote handler can get wrong,
 * ported from Next's own fixtures (use-cache-route-handler-only, use-cache-custom-handler, use-cache):
 * a prerendered route handler over a tagged 'use cache' function, a static one over an untagged function with I/O
 * inside, a page over a tagged function, a `cacheLife({ stale: 1, revalidate: 2, expire: 400 })` value, and Server
 * Actions doing updateTag, revalidateTag(t, 'max'), revalidateTag(t, { expire: 1 }) and revalidatePath.
 *
 * The same scenarios run first against a build with Next's own default handlers (one instance: they share nothing),
 * which pins down what Next does; then against cachekit-next with two instances on one Redis, File and Memcached
 * store. Every response must be 200 (a handler that reads the clock or a sync random source inside the background
 * regeneration makes Next abort that prerender: HTTP 500), and fresh data must arrive after each revalidation.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Polls wait for Next's background regeneration too: generous for a loaded 2-core machine, never a timing assertion. */
const POLL = { timeout: 20_000, intervals: [100, 250, 500] };

interface Value {
  id: string;
  at: string;
}

interface Setup {
  name: string;
  distDir: () => string;
  /** The documented cross-instance bound: message delivery on Redis, `coherenceTtlSeconds` (1 s) elsewhere. */
  coherenceMs: number;
  /** A store (started before the instances) and the environment pointing an instance at it; null: Next's defaults. */
  store: (() => Promise<{ env: NodeJS.ProcessEnv; stop(): Promise<void> }>) | null;
}

// `next start` evaluates next.config.mjs again: the switch must be set there too, or it runs cachekit's handlers.
const NEXT_HANDLERS = { CACHE_HANDLERS: 'next' };

const setups: Setup[] = [
  { name: "Next's default handlers", distDir: () => process.env.E2E_CC_NEXT_BUILD!, coherenceMs: 0, store: null },
  {
    name: 'cachekit on redis',
    distDir: () => process.env.E2E_CC_BUILD!,
    coherenceMs: 150,
    store: async () => {
      const redis = await startRedis();
      return { env: { CACHEKIT_REDIS_URL: redis.url }, stop: () => redis.stop() };
    },
  },
  {
    name: 'cachekit on file',
    distDir: () => process.env.E2E_CC_BUILD!,
    coherenceMs: 1_000,
    store: async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'ck-e2e-cc-file-'));
      return { env: { CACHEKIT_FILE_CACHE_DIR: dir }, stop: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    // Encrypted: every stored entry takes a fresh random nonce, drawn on the regeneration's path.
    name: 'cachekit on memcached, encrypted',
    distDir: () => process.env.E2E_CC_BUILD!,
    coherenceMs: 1_000,
    store: async () => {
      const server: ServerHandle = await startMemcached();
      const env = { CACHEKIT_MEMCACHED_SERVERS: server.address, CACHEKIT_NEXT_OPTIONS: '{"encryption":true}', CACHEKIT_MASTER_KEY: 'c3'.repeat(32) };
      return { env, stop: () => server.stop() };
    },
  },
];

/** Every response any scenario saw, per setup: the 500s are the defect this file exists for. */
class Reader {
  readonly failures: string[] = [];
  constructor(private readonly request: APIRequestContext) {}

  async json<T>(server: NextServer, route: string): Promise<T> {
    const response = await this.request.get(`${server.url}${route}`);
    if (response.status() !== 200) this.failures.push(`${route} on :${server.port}: HTTP ${response.status()}`);
    return response.status() === 200 ? ((await response.json()) as T) : ({} as T);
  }

  async page(server: NextServer, route: string): Promise<Value> {
    const response = await this.request.get(`${server.url}${route}`);
    if (response.status() !== 200) this.failures.push(`${route} on :${server.port}: HTTP ${response.status()}`);
    const html = await response.text();
    return { id: html.match(/id="id">([^<]*)</)?.[1] ?? '', at: html.match(/id="at">([^<]*)</)?.[1] ?? '' };
  }

  /** The tagged values: route handler /api/x and page /tagged. */
  async tagged(server: NextServer): Promise<{ route: string; page: string }> {
    const [route, page] = await Promise.all([this.json<Value>(server, '/api/x'), this.page(server, '/tagged')]);
    return { route: route.id, page: page.id };
  }

  /** Polls `server` until both tagged values differ from `before`; the fresh values. */
  async freshAfter(server: NextServer, before: { route: string; page: string }): Promise<{ route: string; page: string }> {
    let fresh = before;
    await expect
      .poll(async () => {
        fresh = await this.tagged(server);
        return fresh.route !== before.route && fresh.page !== before.page;
      }, POLL)
      .toBe(true);
    return fresh;
  }
}

/** Clicks a Server Action button on /actions of `server` and waits for the action's response. */
async function runAction(page: Page, server: NextServer, buttonId: string): Promise<void> {
  await page.goto(`${server.url}/actions`);
  const done = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(server.url));
  await page.locator(`#${buttonId}`).click();
  expect((await done).status(), `${buttonId} action`).toBe(200);
}

/** Lines in which Next reports an aborted prerender or a failed request (the probe: an abort Next did not report). */
const SERVER_ERRORS = /\[prerender-probe\]|Dynamic server usage|couldn't be rendered statically|encountered the unstable value|⨯|Error: /;

for (const setup of setups) {
  test.describe(setup.name, () => {
    test.describe.configure({ mode: 'serial' });
    const ours = setup.store !== null;
    let store: { env: NodeJS.ProcessEnv; stop(): Promise<void> } | undefined;
    let a: NextServer;
    let b: NextServer;

    test.beforeAll(async () => {
      store = setup.store ? await setup.store() : undefined;
      const options = { distDir: setup.distDir(), env: { ...(store?.env ?? NEXT_HANDLERS), NODE_OPTIONS: `--require ${PROBE}` } };
      if (ours) [a, b] = await Promise.all([startNext('cache-components-app', options), startNext('cache-components-app', options)]);
      else a = b = await startNext('cache-components-app', options);
    });

    test.afterAll(async () => {
      const servers = a === b ? [a] : [a, b];
      await Promise.all(servers.map((s) => s?.stop()));
      await store?.stop();
    });

    let logFrom: number[] = [];
    test.beforeEach(() => {
      logFrom = [a.log().length, b.log().length];
    });
    test.afterEach(() => {
      const logged = [a, b].flatMap((s, i) => s.log().slice(logFrom[i]).split('\n')).filter((line) => SERVER_ERRORS.test(line));
      expect(logged, 'errors in the server log').toEqual([]);
      if (!ours) expect(a.log(), "Next's own handlers only").not.toContain('cachekit');
    });

    test('every route answers 200 from the first request after the build; concurrent reads share one entry', async ({ request }) => {
      const read = new Reader(request);
      const untagged = await read.json<{ first: Value; second: Value }>(a, '/api/untagged');
      expect(untagged.first?.id).toBeTruthy();
      expect(untagged.second).toEqual(untagged.first); // as Next's use-cache-route-handler-only fixture
      const onA = await read.tagged(a);
      expect(onA.route).toBeTruthy();
      expect(onA.page).toBeTruthy();
      expect((await read.json<Value>(a, '/api/life')).id).toBeTruthy();
      expect(await read.tagged(a)).toEqual(onA); // cached
      if (ours) {
        await sleep(setup.coherenceMs);
        expect(await read.tagged(b)).toEqual(onA); // one shared store
        expect(await read.json(b, '/api/untagged')).toEqual(untagged);
      }
      expect(read.failures).toEqual([]);
    });

    test('updateTag(x) in a Server Action: the next read on A is fresh, B follows within the coherence bound', async ({ request, page }) => {
      const read = new Reader(request);
      const before = await read.tagged(a);
      await runAction(page, a, 'update-tag');
      // Read-your-own-writes: updateTag expires the tag now, so A's next request waits for fresh data.
      const after = await read.tagged(a);
      expect(after.route).not.toBe(before.route);
      expect(after.page).not.toBe(before.page);
      await sleep(setup.coherenceMs + 100);
      expect(await read.tagged(b)).toEqual(after);
      expect(read.failures).toEqual([]);
    });

    test("revalidateTag(x, 'max'): stale while Next regenerates, then fresh on A and B", async ({ request, page }) => {
      const read = new Reader(request);
      const before = await read.tagged(a);
      await runAction(page, a, 'revalidate-tag-max');
      // As Next's use-cache-route-handler-only fixture: the first read after the event is the old value, served stale.
      expect(await read.tagged(a)).toEqual(before);
      const fresh = await read.freshAfter(a, before);
      await expect.poll(() => read.tagged(b), POLL).toEqual(fresh);
      expect(read.failures).toEqual([]);
    });

    test('revalidateTag(x, { expire: 1 }): every response stays 200 and fresh data arrives after the expiry', async ({ request, page }) => {
      const read = new Reader(request);
      const before = await read.tagged(a);
      await runAction(page, a, 'revalidate-tag-expire');
      // The reported defect: past the expiry the regeneration read the clock in the handler and answered 500 forever.
      await read.freshAfter(a, before);
      await sleep(1_500); // past the expiry: reads now regenerate, none may fail
      for (let i = 0; i < 3; i++) await read.tagged(a);
      await expect.poll(() => read.tagged(b), POLL).toEqual(await read.tagged(a));
      expect(read.failures).toEqual([]);
    });

    test('revalidatePath(/api/x, /tagged): both regenerate, on A and B', async ({ request, page }) => {
      const read = new Reader(request);
      const before = await read.tagged(a);
      await runAction(page, a, 'revalidate-path');
      const fresh = await read.freshAfter(a, before);
      await expect.poll(() => read.tagged(b), POLL).toEqual(fresh);
      expect(read.failures).toEqual([]);
    });

    test('cacheLife({ stale: 1, revalidate: 2, expire: 400 }) without tags regenerates on schedule', async ({ request }) => {
      const read = new Reader(request);
      const seen = new Set<string>();
      // Three distinct values: it regenerated at least twice (Next: about every 2 s, in the background).
      await expect
        .poll(
          async () => {
            for (const server of ours ? [a, b] : [a]) seen.add((await read.json<Value>(server, '/api/life')).id);
            return seen.size;
          },
          { timeout: 30_000, intervals: [500] },
        )
        .toBeGreaterThanOrEqual(3);
      expect(read.failures).toEqual([]);
    });
  });
}
