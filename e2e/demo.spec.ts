import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { freePort } from '../test/support/servers.js';
import { appDir, ROOT } from './support/apps.js';

// `npm run demo` exactly as a new user runs it (scripts/demo.mjs builds the package, installs the tarball into
// examples/demo-app, builds it and serves it), with nothing configured: the embedded File backend.
test.describe.configure({ mode: 'serial' });

const STORE = path.join(appDir('demo-app'), '.next', 'cache', 'cachekit');
const LOADERS = ['catalog', 'weather', 'rates'] as const;
const HIT = /^l[12]$/;

let demo: ChildProcess;
let output = '';
let url: string;
let page: Page;

test.beforeAll(async ({ browser }) => {
  test.setTimeout(300_000);
  rmSync(STORE, { recursive: true, force: true }); // the store starts empty: the first load is a miss everywhere
  const port = await freePort();
  url = `http://127.0.0.1:${port}/`;
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
  // Nothing selects a backend, as on a fresh machine.
  for (const name of Object.keys(env)) if (name.startsWith('CACHEKIT_') || name === 'REDIS_URL') delete env[name];
  delete env.NODE_OPTIONS;
  demo = spawn(process.execPath, [path.join(ROOT, 'scripts', 'demo.mjs')], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  demo.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  demo.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));

  // It builds the package and the app first: minutes on a loaded machine.
  const deadline = Date.now() + 240_000;
  for (;;) {
    if (demo.exitCode !== null) throw new Error(`npm run demo exited with ${demo.exitCode}:\n${output}`);
    // Not the page itself: rendering it would call the loaders before the test looks.
    const status = await fetch(`${url}api/stats`, { signal: AbortSignal.timeout(5_000) }).then(
      (res) => res.status,
      () => 0,
    );
    if (status === 200) break;
    if (Date.now() > deadline) throw new Error(`the demo did not answer within 240 s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  page = await browser.newPage();
});

test.afterAll(async () => {
  await page?.close();
  if (!demo || demo.exitCode !== null) return;
  const exited = new Promise((resolve) => demo.once('exit', resolve));
  process.kill(-demo.pid!, 'SIGTERM'); // the group: demo.mjs, next start and the server it forks
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  if (demo.exitCode === null) process.kill(-demo.pid!, 'SIGKILL');
});

const status = (name: string) => page.getByTestId(`status-${name}`);
const generatedAt = (name: string) => page.getByTestId(`generated-${name}`).innerText();

test('first load: every loader is a miss', async () => {
  await page.goto(url);
  for (const name of LOADERS) {
    await expect(status(name)).toHaveAttribute('data-status', 'miss');
    await expect(status(name)).toHaveText('miss');
  }
});

test("reload: every loader is a hit, stored in the app's .next/cache/cachekit", async ({ request }) => {
  const first = Object.fromEntries(await Promise.all(LOADERS.map(async (name) => [name, await generatedAt(name)])));
  await page.reload();
  for (const name of LOADERS) {
    await expect(status(name)).toHaveAttribute('data-status', HIT);
    await expect(status(name)).toHaveText(/^L[12] hit$/);
    expect(await generatedAt(name)).toBe(first[name]); // the same value, not computed again
  }
  // The File backend names each entry's file by the SHA-256 of its key. The loaders name no backend or namespace:
  // they get the handlers' store and the app's namespace, its package.json name.
  const stats = await (await request.get(`${url}api/stats`)).json();
  const files = readdirSync(STORE);
  for (const name of LOADERS) {
    const key: string = stats.loaders[name].key;
    expect(key).toMatch(new RegExp(`^cachekit:cachekit-example-demo:fn:${name}:[0-9a-f]{64}$`));
    expect(files, key).toContain(createHash('sha256').update(key).digest('hex'));
  }
});

test('the hit ratios are live: the polled stats count requests made elsewhere', async ({ request }) => {
  const before = Number(await page.getByTestId('total-hits').innerText());
  expect((await request.get(url)).status()).toBe(200); // another visitor: three more hits in this server
  await expect.poll(async () => Number(await page.getByTestId('total-hits').innerText())).toBeGreaterThanOrEqual(before + LOADERS.length);
  await expect(page.getByTestId('total-ratio')).toHaveText(/^\d+%$/);
});

test('Revalidate tag catalog: catalog is a miss, weather still a hit; the next reload is a hit', async () => {
  const before = await generatedAt('catalog');
  await page.getByTestId('revalidate-tag').click();
  // The action's response re-renders the page with the tag expired.
  await expect(status('catalog')).toHaveAttribute('data-status', 'miss');
  await expect(status('weather')).toHaveAttribute('data-status', HIT);
  const recomputed = await generatedAt('catalog');
  expect(recomputed).not.toBe(before);

  await page.reload();
  await expect(status('catalog')).toHaveAttribute('data-status', HIT);
  expect(await generatedAt('catalog')).toBe(recomputed);
});

test('Revalidate path /: weather is a miss; the next reload is a hit', async () => {
  const before = await generatedAt('weather');
  await page.getByTestId('revalidate-path').click();
  await expect(status('weather')).toHaveAttribute('data-status', 'miss');
  await expect(status('catalog')).toHaveAttribute('data-status', HIT);
  const recomputed = await generatedAt('weather');
  expect(recomputed).not.toBe(before);

  await page.reload();
  await expect(status('weather')).toHaveAttribute('data-status', HIT);
  expect(await generatedAt('weather')).toBe(recomputed);
});

test("the page names the backend in use: the embedded File backend in the app's store directory", async () => {
  await expect(page.getByTestId('backend')).toHaveText('file');
  await expect(page.getByTestId('backend-where')).toHaveText(STORE);
});

test('the page links the metrics and health routes, and they answer', async ({ request }) => {
  const links = page.getByTestId('observe-links');
  const metricsHref = await links.getByRole('link', { name: 'Prometheus metrics' }).getAttribute('href');
  const healthHref = await links.getByRole('link', { name: 'health check' }).getAttribute('href');
  const metrics = await request.get(new URL(metricsHref!, url).href);
  expect(metrics.status()).toBe(200);
  // The loaders of this test's page loads were counted (counting starts with the first scrape or registerMetrics()).
  expect(await metrics.text()).toMatch(/^cachekit_l1_entries\{cache="cachekit-next",backend="file"\} \d+$/m);
  const health = await request.get(new URL(healthHref!, url).href);
  expect(health.status()).toBe(200);
  expect(await health.json()).toMatchObject({ status: 'ok', degraded: false, l2: { backend: 'file', healthy: true }, subscription: 'none' });
});
