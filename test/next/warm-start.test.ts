import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { CacheStack, type CachekitNextOptions } from '../../src/stack/stack.js';
import { seedFromBuild } from '../../src/next/warm-start.js';
import { appPage } from './fixtures.js';

const PAGE_KEY = '/route-cache/APP_PAGE/c385/$/isr';
const ROUTE_KEY = '/route-cache/APP_ROUTE/3885/$/api/time';
const tags = '_N_T_/layout,_N_T_/isr/layout,_N_T_/isr/page,_N_T_/isr';

let dist: string;
let serverDir: string;

/** A `.next` directory laid out as next@16.4 writes it for one ISR page and one cached route handler. */
beforeAll(async () => {
  dist = await mkdtemp(path.join(os.tmpdir(), 'ck-warm-'));
  serverDir = path.join(dist, 'server');
  const app = path.join(serverDir, 'app');
  await mkdir(path.join(app, 'isr.segments', 'isr'), { recursive: true });
  await mkdir(path.join(app, 'api'), { recursive: true });
  await writeFile(
    path.join(dist, 'prerender-manifest.json'),
    JSON.stringify({
      version: 4,
      routes: {
        '/isr': { initialRevalidateSeconds: 3600, initialExpireSeconds: 31536000, srcRoute: '/isr', dataRoute: '/isr.rsc' },
        '/api/time': { initialRevalidateSeconds: 60, initialExpireSeconds: 600, srcRoute: '/api/time', dataRoute: null },
        '/legacy': { initialRevalidateSeconds: 60, srcRoute: '/legacy', dataRoute: '/legacy.rsc' },
      },
    }),
  );
  await writeFile(path.join(app, 'isr.html'), '<html>prerendered ✓</html>');
  await writeFile(path.join(app, 'isr.rsc'), Buffer.from([1, 2, 3, 0, 255]));
  await writeFile(path.join(app, 'isr.segments', '_tree.segment.rsc'), 'tree');
  await writeFile(path.join(app, 'isr.segments', 'isr', '__PAGE__.segment.rsc'), Buffer.from([9, 9]));
  await writeFile(
    path.join(app, 'isr.meta'),
    JSON.stringify({
      headers: { 'x-nextjs-prerender': '1', 'x-next-cache-tags': tags },
      segmentPaths: ['/_tree', '/isr/__PAGE__'],
      routeCache: { key: PAGE_KEY, owner: { kind: 'APP_PAGE', sourceRoute: '/isr/page' }, isFallback: false },
    }),
  );
  await writeFile(path.join(app, 'api', 'time.body'), '{"id":"built"}');
  await writeFile(
    path.join(app, 'api', 'time.meta'),
    JSON.stringify({
      status: 200,
      headers: { 'content-type': 'application/json', 'x-next-cache-tags': '_N_T_/api/time' },
      routeCache: { key: ROUTE_KEY, owner: { kind: 'APP_ROUTE', sourceRoute: '/api/time/route' }, isFallback: false },
    }),
  );
  // Next 15-style output without routeCache: skipped, never guessed.
  await writeFile(path.join(app, 'legacy.html'), '<html>old</html>');
  await writeFile(path.join(app, 'legacy.meta'), JSON.stringify({ headers: {} }));
});

afterAll(async () => {
  await rm(dist, { recursive: true, force: true });
});

function instance(backend: MemoryBackend, options: CachekitNextOptions = {}) {
  const rt = new CacheStack({ backend, namespace: 'warm', deploymentId: 'd1', ...options });
  const Handler = handlerClassFor(() => rt);
  return { rt, handler: () => new Handler({ serverDistDir: serverDir }) };
}

describe('warm start from the build output', () => {
  it('seeds pages and routes under the exact keys Next asks for', async () => {
    const backend = new MemoryBackend();
    const a = instance(backend);
    const result = await seedFromBuild(a.rt, serverDir, (key) => `cachekit:warm:d1:r:${key}`);
    expect(result).toEqual({ seeded: 2, present: 0, skipped: 1 });

    const b = instance(backend);
    const page = await b.handler().get(PAGE_KEY, { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false });
    expect(page!.value).toEqual({
      kind: 'APP_PAGE',
      html: '<html>prerendered ✓</html>',
      rscData: Buffer.from([1, 2, 3, 0, 255]),
      headers: { 'x-nextjs-prerender': '1', 'x-next-cache-tags': tags },
      segmentData: new Map([
        ['/_tree', Buffer.from('tree')],
        ['/isr/__PAGE__', Buffer.from([9, 9])],
      ]),
    });
    expect(page!.cacheControl).toEqual({ revalidate: 3600, expire: 31536000 });
    const route = await b.handler().get(ROUTE_KEY, { kind: 'APP_ROUTE' });
    expect(route!.value).toMatchObject({ kind: 'APP_ROUTE', status: 200, body: Buffer.from('{"id":"built"}') });
    expect(await backend.getTtl(`cachekit:warm:d1:r:${ROUTE_KEY}`)).toBeLessThanOrEqual(600);
  });

  it('never overwrites an entry another instance already regenerated', async () => {
    const backend = new MemoryBackend();
    const a = instance(backend);
    await a.handler().set(PAGE_KEY, appPage(), { cacheControl: { revalidate: 3600 } });
    const b = instance(backend);
    const result = await seedFromBuild(b.rt, serverDir, (key) => `cachekit:warm:d1:r:${key}`);
    expect(result).toMatchObject({ seeded: 1, present: 1 });
    const page = await b.handler().get(PAGE_KEY, { kind: 'APP_PAGE' });
    expect((page!.value as { html: string }).html).toBe((appPage() as { html: string }).html);
  });

  it('with warmStart: true, the first request after a deploy is a hit', async () => {
    const backend = new MemoryBackend();
    const a = instance(backend, { warmStart: true });
    const page = await a.handler().get(PAGE_KEY, { kind: 'APP_PAGE' });
    expect((page!.value as { html: string }).html).toBe('<html>prerendered ✓</html>');
    const off = instance(new MemoryBackend());
    expect(await off.handler().get(PAGE_KEY, { kind: 'APP_PAGE' })).toBeNull();
  });
});
