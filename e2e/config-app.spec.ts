import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { appDir, buildApp, installApp, startNext, type NextServer } from './support/apps.js';
import { snapshot } from './support/scenarios.js';

// examples/config-app: next.config.ts with withCachekit({ backend: './cachekit.backend.mjs', namespace, l1 }) and no
// CACHEKIT_* variable anywhere. Its backend module records every write (pid, NEXT_PHASE, key) next to a File store:
// that proves which processes imported the module and which options they ran with.
test.describe.configure({ mode: 'serial' });

const APP = 'config-app';
const DIST = '.next-e2e-cfg';
const BUILD_ID = 'e2e-cfg-build';
const NAMESPACE = 'config-app-ns';
const store = mkdtempSync(path.join(os.tmpdir(), 'ck-e2e-config-'));
let servers: NextServer[] = [];

interface Write {
  pid: number;
  phase: string;
  key: string;
}

function writes(): Write[] {
  const log = path.join(store, 'writes.log');
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [pid, phase, key] = line.split(' ');
      return { pid: Number(pid), phase: phase!, key: key! };
    });
}

const env = () => ({ DATA_URL: process.env.E2E_DATA_URL!, STORE_DIR: store });

test.beforeAll(async () => {
  test.setTimeout(300_000);
  await installApp(APP);
  // The embedded File default of the handlers would be here: it must stay unused.
  rmSync(path.join(appDir(APP), '.next', 'cache', 'cachekit'), { recursive: true, force: true });
  await buildApp(APP, { distDir: DIST, buildId: BUILD_ID, env: env() });
});

test.afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(store, { recursive: true, force: true });
});

test('next build: the build workers import the backend module and run with the options of withCachekit', () => {
  const built = writes();
  expect(built.length).toBeGreaterThan(0);
  // The fetch of /isr, cached while prerendering in a build worker (not this process, not the config's process).
  const fetches = built.filter((w) => w.key.startsWith(`cachekit:${NAMESPACE}:f:`));
  expect(fetches.length).toBeGreaterThan(0);
  for (const write of built) {
    expect(write.phase).toBe('phase-production-build');
    expect(write.pid).not.toBe(process.pid);
    expect(write.key.startsWith(`cachekit:${NAMESPACE}:`), write.key).toBe(true);
  }
  expect(existsSync(path.join(appDir(APP), '.next', 'cache', 'cachekit'))).toBe(false);
});

test("next start: both instances use the module's store and the options; a page written by A is a HIT on B", async ({ request }) => {
  const before = writes().length;
  servers = await Promise.all([startNext(APP, { distDir: DIST, env: env() }), startNext(APP, { distDir: DIST, env: env() })]);
  const [a, b] = servers as [NextServer, NextServer];

  const first = await snapshot(request, `${a.url}/isr`);
  expect(first.cache).toBe('MISS');
  const runtimeWrites = writes().slice(before);
  // The page, scoped by this build's id under the configured namespace, written by the `next start` server.
  const page = runtimeWrites.find((w) => w.key.startsWith(`cachekit:${NAMESPACE}:${BUILD_ID}:r:`) && w.key.endsWith('/isr'));
  expect(page, JSON.stringify(runtimeWrites)).toBeTruthy();
  expect(page!.phase).not.toBe('phase-production-build');

  await new Promise((r) => setTimeout(r, 1_100)); // File store: no invalidation messages, 1 s coherence TTL
  const onB = await snapshot(request, `${b.url}/isr`);
  expect(onB.cache).toBe('HIT');
  expect(onB.renderId).toBe(first.renderId);
  expect(onB.fetchN).toBe(first.fetchN);

  for (const server of servers) {
    // Neither fell back to the environment's resolution (the embedded File backend announces itself) nor failed.
    expect(server.log()).not.toMatch(/no backend configured|\[cachekit\]/);
  }
  expect(existsSync(path.join(appDir(APP), '.next', 'cache', 'cachekit'))).toBe(false);
});

test("'use cache' and 'use cache: remote' (cacheHandlers set by withCachekit) share values through the module's store", async ({ request }) => {
  const [a, b] = servers as [NextServer, NextServer];
  const read = async (url: string) => {
    const response = await request.get(`${url}/uc`);
    expect(response.status()).toBe(200);
    const html = await response.text();
    const pick = (id: string) => html.match(new RegExp(`id="${id}">([^<]*)<`))?.[1];
    return { render: pick('render-id'), local: pick('uc-id'), remote: pick('remote-id') };
  };
  const before = writes().length;
  const onA = await read(a.url);
  expect(onA.local).toBeTruthy();
  expect(onA.remote).toBeTruthy();
  // One per cache kind. Next stores a 'use cache' value while (or just after) the response streams: under load the
  // write can land after the response, so it is awaited rather than assumed.
  const storedUseCache = () =>
    writes()
      .slice(before)
      .filter((w) => w.key.startsWith(`cachekit:${NAMESPACE}:u:`)).length;
  await expect.poll(storedUseCache, { timeout: 10_000, message: JSON.stringify(writes()) }).toBeGreaterThanOrEqual(2);
  await new Promise((r) => setTimeout(r, 1_100));
  const onB = await read(b.url);
  expect(onB.render).not.toBe(onA.render); // a new render on B...
  expect({ local: onB.local, remote: onB.remote }).toEqual({ local: onA.local, remote: onA.remote }); // ...with A's cached values
});
