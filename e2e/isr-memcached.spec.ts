import { test } from '@playwright/test';
import { startMemcached } from '../test/support/servers.js';
import { sharedCacheScenarios } from './support/scenarios.js';

// Two instances on two memcached servers (no invalidation messages: the invalidation epoch, read once per request).
test.describe.configure({ mode: 'serial' });

let servers: Awaited<ReturnType<typeof startMemcached>>[] = [];
test.beforeAll(async () => {
  servers = await Promise.all([startMemcached(), startMemcached()]);
});
test.afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

sharedCacheScenarios('memcached', () => ({
  env: { CACHEKIT_MEMCACHED_SERVERS: servers.map((s) => s.address).join(',') },
  coherenceWaitMs: 150,
}));
