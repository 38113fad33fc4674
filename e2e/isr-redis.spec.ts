import { expect, test } from '@playwright/test';
import { startBlackhole, startRedis } from '../test/support/servers.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { appDir, buildApp, startNext, type NextServer } from './support/apps.js';
import { sharedCacheScenarios, snapshot } from './support/scenarios.js';

// Two instances on one Redis, with pub/sub keeping their L1s coherent.
test.describe.configure({ mode: 'serial' });

let redis: Awaited<ReturnType<typeof startRedis>>;
test.beforeAll(async () => {
  redis = await startRedis();
});
test.afterAll(async () => {
  await redis?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Invalidation messages arrive within milliseconds; 150 ms leaves room for a loaded 2-core machine.
const { a, b } = sharedCacheScenarios('redis', () => ({ env: { CACHEKIT_REDIS_URL: redis.url }, coherenceWaitMs: 150 }));

test('redis: 6-7. a rebuild with Redis unreachable finishes in bounded time; the new build (warm-started) never serves the old build pages', async ({
  request,
}) => {
  const old = await snapshot(request, `${a().url}/isr`);
  const hole = await startBlackhole(); // accepts connections, never answers: the worst case for a build
  let c: NextServer | undefined;
  try {
    const build = await buildApp('isr-app', {
      distDir: '.next-e2e-b',
      buildId: 'e2e-build-b',
      env: { DATA_URL: process.env.E2E_DATA_URL!, CACHEKIT_REDIS_URL: `redis://${hole.address}` },
      timeoutMs: 150_000,
    });
    expect(build.buildId).toBe('e2e-build-b');
    console.log(`[e2e] build with Redis black-holed took ${build.durationMs} ms`);
    // Bounded: connect timeouts and the breaker turn every cache call into a quick miss.
    expect(build.durationMs).toBeLessThan(90_000);

    // With warm start, the new deployment's first request is a HIT on its own prerendered page.
    c = await startNext('isr-app', {
      distDir: '.next-e2e-b',
      env: { DATA_URL: process.env.E2E_DATA_URL!, CACHEKIT_REDIS_URL: redis.url, CACHEKIT_NEXT_OPTIONS: JSON.stringify({ warmStart: true }) },
    });
    const prerendered = readFileSync(path.join(appDir('isr-app'), '.next-e2e-b', 'server', 'app', 'isr.html'), 'utf8').match(/id="render-id">([^<]*)</)![1];
    const onNewBuild = await snapshot(request, `${c.url}/isr`);
    expect(onNewBuild.cache).toBe('HIT');
    expect(onNewBuild.renderId).toBe(prerendered);
    expect(onNewBuild.renderId).not.toBe(old.renderId);
    // ...and the old deployment keeps its own pages.
    expect((await snapshot(request, `${a().url}/isr`)).renderId).toBe(old.renderId);
  } finally {
    await c?.stop();
    await hole.stop();
  }
});

test('redis: 8. Redis dies under load: pages keep being served; when it returns, sharing resumes without a restart', async ({ request }) => {
  const statuses = new Map<number, number>();
  let running = true;
  const load = (async () => {
    while (running) {
      for (const server of [a(), b()]) {
        for (const path of ['/isr', '/tagged', '/api/time']) {
          const response = await fetch(`${server.url}${path}`, { signal: AbortSignal.timeout(10_000) }).catch(() => null);
          const status = response?.status ?? 0;
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          await response?.arrayBuffer();
        }
      }
    }
  })();

  await sleep(500);
  const port = redis.port;
  await redis.stop();
  await sleep(4_000); // serving with the store down
  redis = await startRedis({ port });
  await sleep(500);

  // Sharing resumes: a fresh render on A is what B serves, as a HIT, without restarting either instance.
  await expect
    .poll(
      async () => {
        await request.post(`${a().url}/api/revalidate?path=/isr`);
        const onA = await snapshot(request, `${a().url}/isr`);
        await sleep(150);
        const onB = await snapshot(request, `${b().url}/isr`);
        return onB.cache === 'HIT' && onB.renderId === onA.renderId;
      },
      { timeout: 30_000, intervals: [500] },
    )
    .toBe(true);

  running = false;
  await load;
  const total = [...statuses.values()].reduce((x, y) => x + y, 0);
  console.log(`[e2e] responses during the outage test: ${JSON.stringify(Object.fromEntries(statuses))}`);
  expect(total).toBeGreaterThan(30);
  expect([...statuses.keys()]).toEqual([200]);
});
