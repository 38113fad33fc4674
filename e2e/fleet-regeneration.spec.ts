/**
 * One regeneration per stale entry across the fleet, as users deploy: one `next build` of isr-app (the global setup's),
 * 4 `next start` instances on one Redis. /regen/[round] (revalidate 4 s) appends a line to a file at every render,
 * whichever process renders. Past its revalidate time, a burst of concurrent requests spread over the instances must
 * cost exactly one render with the lease (the default), after which every instance serves the new rendering. The same
 * burst with `regenerationLeaseMs: 0` is the control: each instance that reads the stale entry regenerates it (Next
 * dedupes only inside one process), so the count is the number of instances that answered STALE, at least 2.
 */
import { expect, test } from '@playwright/test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedis } from '../test/support/servers.js';
import { startNext, type NextServer } from './support/apps.js';

test.describe.configure({ mode: 'serial' });

/** The page's `export const revalidate`, in ms. */
const REVALIDATE_MS = 4_000;
const INSTANCES = 4;
const BURST = 40;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let redis: Awaited<ReturnType<typeof startRedis>>;
let dir: string;
test.beforeAll(async () => {
  redis = await startRedis();
  dir = mkdtempSync(path.join(os.tmpdir(), 'ck-e2e-regen-'));
});
test.afterAll(async () => {
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Render {
  round: string;
  renderId: string;
  instance: string;
}

interface Reply {
  instance: number;
  status: number;
  cache: string | null;
  renderId: string | undefined;
}

/** Every render of the page so far, in order, from every instance. */
function renders(log: string, round: string): Render[] {
  let text = '';
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Render)
    .filter((r) => r.round === round);
}

async function get(servers: NextServer[], instance: number, pathname: string): Promise<Reply> {
  const response = await fetch(`${servers[instance]!.url}${pathname}`, { signal: AbortSignal.timeout(30_000) });
  const html = await response.text();
  return {
    instance,
    status: response.status,
    cache: response.headers.get('x-nextjs-cache'),
    renderId: html.match(/id="render-id">([^<]*)</)?.[1],
  };
}

/**
 * Primes /regen/<round> on the first of `servers`, waits past its revalidate time, then fires BURST concurrent
 * requests round-robin over `servers`, and waits until every one of them serves one same new rendering.
 */
async function staleBurst(servers: NextServer[], log: string, round: string) {
  const pathname = `/regen/${round}`;
  const primed = await get(servers, 0, pathname);
  expect(primed.status).toBe(200);
  expect(renders(log, round).map((r) => r.renderId)).toEqual([primed.renderId]);
  // Every instance reads it once while fresh (its L1 holds it too): the stale entry then exists in every process.
  for (let i = 1; i < servers.length; i++) expect((await get(servers, i, pathname)).renderId).toBe(primed.renderId);
  await sleep(REVALIDATE_MS + 1_000);

  const replies = await Promise.all(Array.from({ length: BURST }, (_, i) => get(servers, i % servers.length, pathname)));
  // Background regeneration settles: every instance serves the same rendering, a new one.
  let served: (string | undefined)[] = [];
  await expect
    .poll(
      async () => {
        served = (await Promise.all(servers.map((_, i) => get(servers, i, pathname)))).map((r) => r.renderId);
        return new Set(served).size === 1 && served[0] !== primed.renderId;
      },
      { timeout: 20_000, intervals: [250] },
    )
    .toBe(true);
  // A regeneration still on its way on another instance has written its line when it began (the page logs first).
  await sleep(500);
  const regenerations = renders(log, round).slice(1);
  const staleOn = [...new Set(replies.filter((r) => r.cache === 'STALE').map((r) => r.instance))].sort();
  const statuses = [...new Set(replies.map((r) => r.status))];
  console.log(
    `[e2e] ${round}: ${regenerations.length} regeneration(s) for ${BURST} requests over ${servers.length} instances; ` +
      `STALE on instance(s) ${JSON.stringify(staleOn)}, rendered on ${JSON.stringify(regenerations.map((r) => Number(r.instance)))}`,
  );
  return { primed, replies, regenerations, staleOn, statuses, served: served[0] };
}

/**
 * Primes /regen/<round> on every instance, then a hard `revalidatePath` on the first (the entry is expired: it cannot be
 * served while it regenerates), then BURST concurrent requests round-robin over `servers`.
 */
async function hardBurst(servers: NextServer[], log: string, round: string) {
  const pathname = `/regen/${round}`;
  const primed = await get(servers, 0, pathname);
  for (let i = 1; i < servers.length; i++) expect((await get(servers, i, pathname)).renderId).toBe(primed.renderId);
  const revalidated = await fetch(`${servers[0]!.url}/api/revalidate?path=${encodeURIComponent(pathname)}`, { method: 'POST' });
  expect(revalidated.status).toBe(200);
  // The other instances learn of it from its invalidation message (Redis pub/sub, a few ms): until then their L1 copy
  // is what they serve, as documented (docs/guarantees.md). The burst starts once it has been delivered.
  await sleep(300);
  const replies = await Promise.all(Array.from({ length: BURST }, (_, i) => get(servers, i % servers.length, pathname)));
  await sleep(500); // a render still on its way has written its line when it began
  const rerenders = renders(log, round).slice(1);
  console.log(
    `[e2e] ${round}: ${rerenders.length} render(s) after a hard revalidatePath, ${BURST} requests over ${servers.length} instances, ` +
      `rendered on ${JSON.stringify(rerenders.map((r) => Number(r.instance)))}`,
  );
  return { primed, replies, rerenders };
}

function fleet(name: string, options: Record<string, unknown> | undefined) {
  let servers: NextServer[] = [];
  let log = '';
  test.beforeAll(async () => {
    log = path.join(dir, `${name}.log`);
    writeFileSync(log, '');
    const env = (instance: number): NodeJS.ProcessEnv => ({
      DATA_URL: process.env.E2E_DATA_URL!,
      CACHEKIT_REDIS_URL: redis.url,
      REGEN_RENDER_LOG: log,
      REGEN_INSTANCE: String(instance),
      ...(options ? { CACHEKIT_NEXT_OPTIONS: JSON.stringify(options) } : {}),
    });
    servers = await Promise.all(Array.from({ length: INSTANCES }, (_, i) => startNext('isr-app', { distDir: process.env.E2E_BUILD_A!, env: env(i) })));
  });
  test.afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });
  return { servers: (n: number) => servers.slice(0, n), log: () => log };
}

test.describe('lease on (default)', () => {
  const { servers, log } = fleet('lease-on', undefined);

  for (const n of [2, INSTANCES]) {
    test(`a stale page requested ${BURST} times over ${n} instances is regenerated once, then served new by all`, async ({ page }) => {
      const round = `on-${n}`;
      const { regenerations, staleOn, statuses, served } = await staleBurst(servers(n), log(), round);
      expect(statuses).toEqual([200]);
      expect(regenerations).toHaveLength(1);
      // The lease holder got it as stale and regenerated it; the others served it as fresh meanwhile.
      expect(staleOn).toEqual([Number(regenerations[0]!.instance)]);
      expect(served).toBe(regenerations[0]!.renderId);
      await page.goto(`${servers(n)[n - 1]!.url}/regen/${round}`);
      await expect(page.locator('#render-id')).toHaveText(regenerations[0]!.renderId);
    });

    test(`after a hard revalidatePath, ${BURST} requests over ${n} instances cost one render: the others wait for it`, async () => {
      const { primed, replies, rerenders } = await hardBurst(servers(n), log(), `hard-${n}`);
      expect(replies.map((r) => r.status)).toEqual(replies.map(() => 200));
      expect(rerenders).toHaveLength(1);
      // Nobody served the expired rendering: every request got the one new rendering.
      expect(new Set(replies.map((r) => r.renderId))).toEqual(new Set([rerenders[0]!.renderId]));
      expect(primed.renderId).not.toBe(rerenders[0]!.renderId);
    });
  }
});

test.describe('control: regenerationLeaseMs 0', () => {
  const { servers, log } = fleet('lease-off', { regenerationLeaseMs: 0 });

  for (const n of [2, INSTANCES]) {
    test(`without the lease, each of ${n} instances that reads the stale page regenerates it`, async () => {
      const { regenerations, staleOn, statuses, served } = await staleBurst(servers(n), log(), `off-${n}`);
      expect(statuses).toEqual([200]);
      expect(staleOn.length).toBeGreaterThanOrEqual(2);
      expect(regenerations.map((r) => Number(r.instance)).sort()).toEqual(staleOn);
      expect(regenerations.map((r) => r.renderId)).toContain(served);
    });

    test(`without the lease, a hard revalidatePath costs each of ${n} instances a render`, async () => {
      const { replies, rerenders } = await hardBurst(servers(n), log(), `hard-off-${n}`);
      expect(replies.map((r) => r.status)).toEqual(replies.map(() => 200));
      expect(new Set(rerenders.map((r) => r.instance)).size).toBe(n);
    });
  }
});
