/**
 * `backend: null` (L1 only, one process): the L1 is the only copy of every entry and the local tag states are the
 * only record of every revalidation, so neither may be dropped after the cross-instance bound (`coherenceTtlSeconds`),
 * which exists for instances that share an L2 and have nothing to do with a process alone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { resetStacks, CacheStack } from '../../src/stack/stack.js';
import { useCacheHandlerFor } from '../../src/next/use-cache-handler.js';
import { appPage, fetchValue } from './fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fetchCtx = { kind: 'FETCH' as const, revalidate: 3600, fetchUrl: 'https://api.example/x', fetchIdx: 0, tags: ['t'], softTags: [] };

afterEach(() => resetStacks());

describe('backend: null keeps entries and tag states past coherenceTtlSeconds', () => {
  it('an entry lives its own TTL, and a revalidated tag stays revalidated', async () => {
    const rt = new CacheStack({ backend: null, coherenceTtlSeconds: 0.05, namespace: 'l1only' });
    const Handler = handlerClassFor(() => rt);
    await new Handler().set('page-key', appPage('_N_T_/blog,posts'), { cacheControl: { revalidate: 3600, expire: 7200 } });
    await new Handler().set('fetch-key', fetchValue(), { fetchCache: true, tags: ['t'], revalidate: 3600 });
    await sleep(200);
    expect((await new Handler().get('page-key', { kind: 'APP_PAGE' }))?.value?.kind).toBe('APP_PAGE');
    expect((await new Handler().get('fetch-key', fetchCtx))?.value?.kind).toBe('FETCH');

    await new Handler().revalidateTag(['t']);
    await sleep(200);
    // Next's default handler keeps the revalidation in its tags manifest for the life of the process: so do we.
    expect(await new Handler().get('fetch-key', fetchCtx)).toBeNull();
    expect((await new Handler().get('page-key', { kind: 'APP_PAGE' }))?.value?.kind).toBe('APP_PAGE');
    await rt.close();
  });

  it("'use cache': an entry outlives the bound, and updateTags is not forgotten", async () => {
    const rt = new CacheStack({ backend: null, coherenceTtlSeconds: 0.05, namespace: 'l1only-uc' });
    const handler = useCacheHandlerFor(() => rt);
    const entry = () => ({
      value: new ReadableStream<Uint8Array>({
        start: (c) => {
          c.enqueue(new Uint8Array([1, 2, 3]));
          c.close();
        },
      }),
      tags: ['u'],
      stale: 0,
      timestamp: performance.timeOrigin + performance.now(),
      expire: 3600,
      revalidate: 900,
    });
    await handler.set('k1', Promise.resolve(entry()));
    await sleep(200);
    expect((await handler.get('k1', []))?.tags).toEqual(['u']);
    await handler.updateTags(['u']);
    await sleep(200);
    expect(await handler.get('k1', [])).toBeUndefined();
    expect(await handler.getExpiration(['u'])).toBeGreaterThan(0);
    await rt.close();
  });
});
