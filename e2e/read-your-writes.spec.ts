import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { startMemcached } from '../test/support/servers.js';
import { startNext, type NextServer } from './support/apps.js';
import { snapshot } from './support/scenarios.js';

/**
 * Read-your-own-writes behind a load balancer on backends without invalidation messages: a Server Action on instance
 * A calls updateTag (or a route handler a hard revalidateTag), and a request on instance B 200 ms later, while B
 * still holds the old values in its L1 and the old tag state, gets fresh ones: an unstable_cache value and a fetch
 * (isr-app), and 'use cache' values (use-cache-app, cacheComponents). Two `next start` instances of each global
 * build, on memcached and on one File directory, with a long `coherenceTtlSeconds` (30 s): how long an L1 copy may be
 * trusted must not delay anything (before the invalidation epoch it was the staleness bound, 1 s by default).
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LATER_MS = 200;
const OPTIONS = { CACHEKIT_NEXT_OPTIONS: JSON.stringify({ coherenceTtlSeconds: 30 }) };

interface Store {
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

const stores: Record<string, () => Promise<Store>> = {
  memcached: async () => {
    const servers = await Promise.all([startMemcached(), startMemcached()]);
    return {
      env: { CACHEKIT_MEMCACHED_SERVERS: servers.map((s) => s.address).join(',') },
      stop: async () => void (await Promise.all(servers.map((s) => s.stop()))),
    };
  },
  file: async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ck-e2e-ryow-'));
    return { env: { CACHEKIT_FILE_CACHE_DIR: dir }, stop: async () => rmSync(dir, { recursive: true, force: true }) };
  },
};

/** Clicks a Server Action button on a page already open on instance `base`, and waits for the action's response. */
async function click(page: Page, base: string, buttonId: string): Promise<void> {
  const done = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(base));
  await page.locator(`#${buttonId}`).click();
  expect((await done).status()).toBe(200);
}

/** B serves `url` from its L1: two reads in a row render the same values (the second one from B's own copy). */
async function heldByB(request: APIRequestContext, url: string, read: (request: APIRequestContext, url: string) => Promise<unknown>): Promise<unknown> {
  const first = await read(request, url);
  const second = await read(request, url);
  expect(second).toEqual(first);
  return second;
}

for (const [name, start] of Object.entries(stores)) {
  test.describe(`read-your-own-writes on ${name}: unstable_cache and fetch (isr-app)`, () => {
    let store: Store;
    let a: NextServer;
    let b: NextServer;
    test.beforeAll(async () => {
      store = await start();
      const env = { DATA_URL: process.env.E2E_DATA_URL!, ...OPTIONS, ...store.env };
      const distDir = process.env.E2E_BUILD_A!;
      [a, b] = await Promise.all([startNext('isr-app', { distDir, env }), startNext('isr-app', { distDir, env })]);
    });
    test.afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await store?.stop();
    });

    const values = async (request: APIRequestContext, url: string) => {
      const { fetchN, ucId } = await snapshot(request, url);
      return { fetchN: Number(fetchN), ucId };
    };

    /** LATER_MS after the event, B's next request has a refetched fetch and a recomputed unstable_cache value. */
    const expectFreshOnB = async (request: APIRequestContext, before: Awaited<ReturnType<typeof values>>) => {
      await sleep(LATER_MS);
      const after = await snapshot(request, `${b.url}/tagged`);
      expect(after.cache).not.toBe('STALE');
      expect(Number(after.fetchN), 'fetch refetched').toBeGreaterThan(before.fetchN);
      expect(after.ucId, 'unstable_cache recomputed').not.toBe(before.ucId);
    };

    test(`${name}: updateTag in a Server Action on A, a read on B ${LATER_MS} ms later is fresh`, async ({ request, page }) => {
      await values(request, `${a.url}/tagged`);
      await page.goto(`${a.url}/tagged`);
      const before = (await heldByB(request, `${b.url}/tagged`, values)) as Awaited<ReturnType<typeof values>>;
      await click(page, a.url, 'update-tag');
      await expectFreshOnB(request, before);
    });

    test(`${name}: a hard revalidateTag in a route handler on A, a read on B ${LATER_MS} ms later is fresh`, async ({ request }) => {
      await values(request, `${a.url}/tagged`);
      const before = (await heldByB(request, `${b.url}/tagged`, values)) as Awaited<ReturnType<typeof values>>;
      const revalidated = await request.post(`${a.url}/api/revalidate?tag=posts`);
      expect(revalidated.status()).toBe(200);
      await expectFreshOnB(request, before);
    });
  });

  test.describe(`read-your-own-writes on ${name}: 'use cache' (use-cache-app)`, () => {
    let store: Store;
    let a: NextServer;
    let b: NextServer;
    test.beforeAll(async () => {
      store = await start();
      const env = { DATA_URL: process.env.E2E_DATA_URL!, ...OPTIONS, ...store.env };
      const distDir = process.env.E2E_USE_CACHE_BUILD!;
      [a, b] = await Promise.all([startNext('use-cache-app', { distDir, env }), startNext('use-cache-app', { distDir, env })]);
    });
    test.afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await store?.stop();
    });

    /** GET /uc (rendered per request) and read what its cached functions returned. */
    const values = async (request: APIRequestContext, url: string) => {
      const response = await request.get(url);
      expect(response.status(), `${url} status`).toBe(200);
      const html = await response.text();
      const pick = (id: string) => html.match(new RegExp(`id="${id}">([^<]*)<`))?.[1];
      return { ucId: pick('uc-id'), remoteId: pick('remote-id'), fetchN: Number(pick('fetch-n')) };
    };

    test(`${name}: updateTag in a Server Action on A, a read on B ${LATER_MS} ms later is fresh`, async ({ request, page }) => {
      await values(request, `${a.url}/uc`);
      await page.goto(`${a.url}/uc`);
      const before = (await heldByB(request, `${b.url}/uc`, values)) as Awaited<ReturnType<typeof values>>;
      expect(before.ucId).toBeTruthy();
      await click(page, a.url, 'update-tag');
      await sleep(LATER_MS);
      const after = await values(request, `${b.url}/uc`);
      expect(after.ucId, "'use cache' regenerated").not.toBe(before.ucId);
      expect(after.remoteId, "'use cache: remote' regenerated").not.toBe(before.remoteId);
      expect(after.fetchN, 'fetch refetched').toBeGreaterThan(before.fetchN);
    });
  });
}
