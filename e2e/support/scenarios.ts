/**
 * The shared-cache scenarios (reference: nextjs-cache-interfaces.md, section 3), run against two `next start`
 * instances of one build on one store. Each spec file supplies the store.
 */
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';
import { startNext, type NextServer } from './apps.js';

export interface Store {
  /** Environment that points an instance at the store. */
  env: NodeJS.ProcessEnv;
  /**
   * How long an instance may serve its L1 copy after another instance changed something: 0 with invalidation
   * messages (plus delivery) or the invalidation epoch (the next request sees it), the coherence TTL (1 s) with
   * `readYourWrites: false`. The scenarios wait this long before reading.
   */
  coherenceWaitMs: number;
}

export interface Snapshot {
  cache: string | null;
  renderId: string;
  fetchN?: string;
  ucId?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** GET a page and read what it rendered plus the cache verdict header. */
export async function snapshot(request: APIRequestContext, url: string): Promise<Snapshot> {
  const response = await request.get(url);
  expect(response.status(), `${url} status`).toBe(200);
  const html = await response.text();
  const pick = (id: string) => html.match(new RegExp(`id="${id}">([^<]*)<`))?.[1];
  const renderId = pick('render-id');
  expect(renderId, `${url} render id`).toBeTruthy();
  const result: Snapshot = { cache: response.headers()['x-nextjs-cache'] ?? null, renderId: renderId! };
  const fetchN = pick('fetch-n');
  const ucId = pick('uc-id');
  if (fetchN !== undefined) result.fetchN = fetchN;
  if (ucId !== undefined) result.ucId = ucId;
  return result;
}

/** Reads #render-id (and the data values) as the browser shows them. */
async function inBrowser(page: Page, url: string): Promise<Omit<Snapshot, 'cache'>> {
  await page.goto(url);
  const text = async (id: string) => ((await page.locator(`#${id}`).count()) > 0 ? ((await page.locator(`#${id}`).textContent()) ?? '') : undefined);
  const result: Omit<Snapshot, 'cache'> = { renderId: (await text('render-id'))! };
  const fetchN = await text('fetch-n');
  const ucId = await text('uc-id');
  if (fetchN !== undefined) result.fetchN = fetchN;
  if (ucId !== undefined) result.ucId = ucId;
  return result;
}

/** Clicks a Server Action button on /tagged and waits for the action's response. */
async function runAction(page: Page, base: string, buttonId: string): Promise<void> {
  await page.goto(`${base}/tagged`);
  const done = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(base));
  await page.locator(`#${buttonId}`).click();
  expect((await done).status()).toBe(200);
}

export interface ScenarioOptions {
  /** The example app. @default 'isr-app' */
  app?: string;
  /** Its build directory (relative to the app). @default the global setup's build of isr-app */
  distDir?: () => string;
  /** Whether the app has `revalidateTag(t, 'max')` (Next 16): scenario 4. @default true */
  staleTagEvents?: boolean;
}

/** Declares scenarios 1-5 for two instances A and B of one build on `store()`. */
export function sharedCacheScenarios(name: string, store: () => Store, options: ScenarioOptions = {}): { a: () => NextServer; b: () => NextServer } {
  const app = options.app ?? 'isr-app';
  const distDir = options.distDir ?? (() => process.env.E2E_BUILD_A!);
  let a: NextServer;
  let b: NextServer;
  const wait = () => sleep(store().coherenceWaitMs);

  test.beforeAll(async () => {
    const env = { DATA_URL: process.env.E2E_DATA_URL!, ...store().env };
    [a, b] = await Promise.all([startNext(app, { distDir: distDir(), env }), startNext(app, { distDir: distDir(), env })]);
  });

  test.afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  test(`${name}: 1. the first request on A writes, B hits the same rendering`, async ({ request, page }) => {
    const first = await snapshot(request, `${a.url}/isr`);
    expect(first.cache).toBe('MISS');
    await wait();
    const onB = await snapshot(request, `${b.url}/isr`);
    expect(onB.cache).toBe('HIT');
    expect(onB.renderId).toBe(first.renderId);
    expect((await inBrowser(page, `${b.url}/isr`)).renderId).toBe(first.renderId);

    const routeA = await request.get(`${a.url}/api/time`);
    await wait();
    const routeB = await request.get(`${b.url}/api/time`);
    expect(routeB.headers()['x-nextjs-cache']).toBe('HIT');
    expect(await routeB.json()).toEqual(await routeA.json());
  });

  test(`${name}: 2. fetch and unstable_cache values are identical across instances`, async ({ request, page }) => {
    const onA = await snapshot(request, `${a.url}/tagged`);
    await wait();
    const onB = await inBrowser(page, `${b.url}/tagged`);
    expect(onB).toEqual({ renderId: onA.renderId, fetchN: onA.fetchN, ucId: onA.ucId });
  });

  test(`${name}: 3. revalidatePath on A makes B render again`, async ({ request, page }) => {
    const before = await snapshot(request, `${b.url}/isr`);
    await runAction(page, a.url, 'revalidate-path');
    await wait();
    const after = await snapshot(request, `${b.url}/isr`);
    expect(after.renderId).not.toBe(before.renderId);
    await wait();
    const onA = await snapshot(request, `${a.url}/isr`);
    expect(onA.renderId).toBe(after.renderId);
    expect(onA.cache).toBe('HIT');
  });

  (options.staleTagEvents === false ? () => {} : test)(
    `${name}: 4. revalidateTag(t, 'max') on A: B serves STALE once, then the regenerated page`,
    async ({ request, page }) => {
      const before = await snapshot(request, `${b.url}/tagged`);
      await runAction(page, a.url, 'revalidate-tag-max');
      await wait();
      const stale = await snapshot(request, `${b.url}/tagged`);
      expect(stale.cache).toBe('STALE');
      expect(stale.fetchN).toBe(before.fetchN);
      // The background regeneration finishes shortly after: poll until B serves it.
      let fresh: Snapshot | undefined;
      await expect
        .poll(
          async () => {
            fresh = await snapshot(request, `${b.url}/tagged`);
            return fresh.cache === 'HIT' && fresh.fetchN !== before.fetchN;
          },
          { timeout: 15_000 },
        )
        .toBe(true);
      expect(Number(fresh!.fetchN)).toBeGreaterThan(Number(before.fetchN));
      expect(fresh!.ucId).not.toBe(before.ucId);
      await wait();
      expect(await inBrowser(page, `${a.url}/tagged`)).toEqual({ renderId: fresh!.renderId, fetchN: fresh!.fetchN, ucId: fresh!.ucId });
    },
  );

  test(`${name}: 5. ${options.staleTagEvents === false ? 'revalidateTag(t)' : 'updateTag(t)'} in a Server Action on B: A's next read is fresh`, async ({
    request,
    page,
  }) => {
    const before = await snapshot(request, `${a.url}/tagged`);
    await runAction(page, b.url, 'update-tag');
    await wait();
    const after = await snapshot(request, `${a.url}/tagged`);
    expect(after.cache).not.toBe('STALE');
    expect(Number(after.fetchN)).toBeGreaterThan(Number(before.fetchN));
    expect(after.ucId).not.toBe(before.ucId);
  });

  return { a: () => a, b: () => b };
}
