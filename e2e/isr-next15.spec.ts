import { test } from '@playwright/test';
import { startRedis } from '../test/support/servers.js';
import { buildApp, installApp } from './support/apps.js';
import { sharedCacheScenarios } from './support/scenarios.js';

// The same scenarios on Next 15.5 (bare-path page keys, no updateTag, no revalidateTag profiles), two instances on Redis.
test.describe.configure({ mode: 'serial' });

let redis: Awaited<ReturnType<typeof startRedis>>;
test.beforeAll(async () => {
  test.setTimeout(300_000);
  redis = await startRedis();
  await installApp('isr-app-next15');
  await buildApp('isr-app-next15', {
    distDir: '.next-e2e-15',
    buildId: 'e2e-next15',
    env: { DATA_URL: process.env.E2E_DATA_URL!, CACHEKIT_REDIS_URL: redis.url },
  });
});
test.afterAll(async () => {
  await redis?.stop();
});

sharedCacheScenarios('next 15.5 on redis', () => ({ env: { CACHEKIT_REDIS_URL: redis.url }, coherenceWaitMs: 150 }), {
  app: 'isr-app-next15',
  distDir: () => '.next-e2e-15',
  staleTagEvents: false,
});
