import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { startRedis } from '../test/support/servers.js';
import { startNext, type NextServer } from './support/apps.js';

/**
 * 'use cache', 'use cache: remote' (cacheHandlers) and a legacy fetch (cacheHandler) sharing the tag `items`, in two
 * `next start` instances of one cacheComponents build on one Redis.
 */
test.describe.configure({ mode: 'serial' });

const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Invalidation messages arrive within milliseconds; 150 ms leaves room for a loaded 2-core machine.
const COHERENCE_WAIT_MS = 150;

let redis: Awaited<ReturnType<typeof startRedis>>;
let a: NextServer;
let b: NextServer;

test.beforeAll(async () => {
  redis = await startRedis();
  const env = { DATA_URL: process.env.E2E_DATA_URL!, CACHEKIT_REDIS_URL: redis.url };
  const distDir = process.env.E2E_USE_CACHE_BUILD!;
  [a, b] = await Promise.all([startNext('use-cache-app', { distDir, env }), startNext('use-cache-app', { distDir, env })]);
});

test.afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
});

interface Values {
  renderId: string;
  /** 'use cache' */
  ucId: string;
  /** 'use cache: remote' */
  remoteId: string;
  /** The legacy fetch's upstream request counter. */
  fetchN: number;
}

/** GET /uc (rendered per request) and read what its cached functions returned. */
async function values(request: APIRequestContext, base: string): Promise<Values> {
  const response = await request.get(`${base}/uc`);
  expect(response.status(), `${base}/uc status`).toBe(200);
  const html = await response.text();
  const pick = (id: string) => {
    const value = html.match(new RegExp(`id="${id}">([^<]*)<`))?.[1];
    expect(value, `${base}/uc #${id}`).toBeTruthy();
    return value!;
  };
  return { renderId: pick('render-id'), ucId: pick('uc-id'), remoteId: pick('remote-id'), fetchN: Number(pick('fetch-n')) };
}

const cached = ({ ucId, remoteId, fetchN }: Values) => ({ ucId, remoteId, fetchN });

/** Clicks a Server Action button on /uc and waits for the action's response. */
async function runAction(page: Page, base: string, buttonId: string): Promise<void> {
  await page.goto(`${base}/uc`);
  const done = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(base));
  await page.locator(`#${buttonId}`).click();
  expect((await done).status()).toBe(200);
}

/** Every value from a cache is new: the 'use cache' entries were regenerated and the fetch went upstream again. */
function expectAllFresh(after: Values, before: Values): void {
  expect(after.ucId).not.toBe(before.ucId);
  expect(after.remoteId).not.toBe(before.remoteId);
  expect(after.fetchN).toBeGreaterThan(before.fetchN);
}

test("use-cache redis: 'use cache', 'use cache: remote' and fetch values are identical across instances", async ({ request, page }) => {
  const onA = await values(request, a.url);
  await sleep(COHERENCE_WAIT_MS);
  const onB = await values(request, b.url);
  expect(onB.renderId).not.toBe(onA.renderId); // rendered per request...
  expect(cached(onB)).toEqual(cached(onA)); // ...from one shared cache
  expect(cached(await values(request, a.url))).toEqual(cached(onA));
  await page.goto(`${b.url}/uc`);
  await expect(page.locator('#uc-id')).toHaveText(onA.ucId);
  await expect(page.locator('#remote-id')).toHaveText(onA.remoteId);
  // Both directives went through cachekit-next into Redis: one key per function, plus the fetch entry.
  const { stdout } = await execFileAsync('redis-cli', ['-p', String(redis.port), '--scan', '--pattern', 'cachekit:cachekit-example-use-cache:*']);
  const keys = stdout.trim().split('\n');
  expect(keys.filter((key) => key.includes(':u:'))).toHaveLength(2);
  expect(keys.filter((key) => key.includes(':f:'))).toHaveLength(1);
});

test('use-cache redis: updateTag(t) in a Server Action on A, the next read on B is fresh', async ({ request, page }) => {
  const before = await values(request, b.url);
  await runAction(page, a.url, 'update-tag');
  await sleep(COHERENCE_WAIT_MS);
  const after = await values(request, b.url);
  expectAllFresh(after, before);
  await sleep(COHERENCE_WAIT_MS);
  expect(cached(await values(request, a.url))).toEqual(cached(after));
});

test("use-cache redis: revalidateTag(t, 'max') on A, B serves stale once, then fresh", async ({ request, page }) => {
  const before = await values(request, b.url);
  await runAction(page, a.url, 'revalidate-tag-max');
  await sleep(COHERENCE_WAIT_MS);
  const stale = await values(request, b.url);
  expect(cached(stale)).toEqual(cached(before)); // served while Next regenerates it in the background
  let fresh: Values | undefined;
  await expect
    .poll(
      async () => {
        fresh = await values(request, b.url);
        return fresh.ucId !== before.ucId && fresh.remoteId !== before.remoteId && fresh.fetchN > before.fetchN;
      },
      { timeout: 15_000 },
    )
    .toBe(true);
  await sleep(COHERENCE_WAIT_MS);
  expect(cached(await values(request, a.url))).toEqual(cached(fresh!));
});

test('use-cache redis: one tag event invalidates the legacy fetch entry and the use-cache entries sharing the tag', async ({ request, page }) => {
  const before = await values(request, a.url);
  await runAction(page, b.url, 'update-tag');
  await sleep(COHERENCE_WAIT_MS);
  expectAllFresh(await values(request, a.url), before);
  // One shared tag state for `items`, written by both interfaces (one stale and one expired key), nothing per entry.
  const { stdout } = await execFileAsync('redis-cli', ['-p', String(redis.port), '--scan', '--pattern', '*tags*']);
  expect(stdout.trim().split('\n').sort()).toEqual([
    'cachekit:{cachekit-example-use-cache.tags}:e:items',
    'cachekit:{cachekit-example-use-cache.tags}:s:items',
  ]);
});

test('use-cache redis: revalidatePath on A (soft tags) makes B regenerate', async ({ request, page }) => {
  const before = await values(request, b.url);
  await runAction(page, a.url, 'revalidate-path');
  await sleep(COHERENCE_WAIT_MS);
  const after = await values(request, b.url);
  expect(after.ucId).not.toBe(before.ucId);
  expect(after.remoteId).not.toBe(before.remoteId);
});
