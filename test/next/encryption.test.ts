/**
 * `encryption` of the Next handlers: every entry (pages, fetches, 'use cache') is ciphertext in the L2 and in the L1;
 * instances with the key read each other's entries; tampered or misplaced entries are misses (evicted), or errors
 * with failClosed; the options are validated and withCachekit keeps keys out of next.config.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { EncryptionError } from '../../src/wire/encryption.js';
import { ConfigError } from '../../src/shared/options.js';
import { SealedCache } from '../../src/store/sealed.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { withCachekit } from '../../src/next/config.js';
import { resetStacks, CacheStack, type CachekitNextOptions } from '../../src/stack/stack.js';
import { useCacheHandlerFor, useCacheStoreKey } from '../../src/next/use-cache-handler.js';
import type { GetContext } from '../../src/wire/next-types.js';
import { appPage, fetchValue } from './fixtures.js';

const MASTER = randomBytes(32).toString('hex');
const OTHER = randomBytes(32).toString('hex');
const pageCtx: GetContext = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false };
const cacheControl = { revalidate: 60, expire: 3600 };
const stacks: CacheStack[] = [];

function instance(backend: MemoryBackend, options: CachekitNextOptions = {}) {
  const rt = new CacheStack({ backend, namespace: 'secure-app', deploymentId: 'build-1', encryption: { masterKey: MASTER }, ...options });
  stacks.push(rt);
  const Handler = handlerClassFor(() => rt);
  return { rt, handler: () => new Handler({ serverDistDir: '/nonexistent/.next/server' }), useCache: useCacheHandlerFor(() => rt) };
}

const pageKey = (rt: CacheStack) => `${rt.keyPrefix}${rt.namespace}:build-1:r:/account`;

afterEach(async () => {
  await Promise.all(stacks.splice(0).map((rt) => rt.close()));
  await resetStacks();
});

describe('Next handlers with encryption', () => {
  it('pages and fetches are ciphertext in the L2 and in the L1; another instance with the key reads them', async () => {
    const backend = new MemoryBackend();
    const a = instance(backend);
    const page = appPage();
    await a.handler().set('/account', page, { cacheControl });
    await a.handler().set('fetch-key', fetchValue('secret body ✓'), { fetchCache: true, tags: ['posts'] });
    const html = (page as { html: string }).html;

    const stored = Buffer.from((await backend.get(pageKey(a.rt)))!);
    expect(stored.subarray(0, 2).toString('latin1')).toBe('cE');
    expect(stored.includes(Buffer.from(html.slice(0, 40)))).toBe(false);
    const fetched = Buffer.from((await backend.get(`${a.rt.keyPrefix}${a.rt.namespace}:f:fetch-key`))!);
    expect(fetched.includes(Buffer.from('secret body'))).toBe(false);

    expect(a.rt.entries).toBeInstanceOf(SealedCache);
    const local = await (a.rt.entries as SealedCache<unknown>).peek(pageKey(a.rt));
    expect(local?.source).toBe('l1');
    expect(Buffer.from(local!.value).equals(stored)).toBe(true);

    const b = instance(backend);
    const hit = await b.handler().get('/account', pageCtx);
    expect(hit?.value).toEqual(page);
    expect(b.rt.entries.stats().l2Hits).toBe(1);
    expect((await b.handler().get('/account', pageCtx))?.value).toEqual(page);
    expect(b.rt.entries.stats().l1Hits).toBe(1);
  });

  it("'use cache' entries are sealed too", async () => {
    const backend = new MemoryBackend();
    const a = instance(backend);
    const encoder = new TextEncoder();
    const value = new ReadableStream<Uint8Array>({
      start: (c) => {
        c.enqueue(encoder.encode('rsc payload: card 4111'));
        c.close();
      },
    });
    await a.useCache.set('["build","fn",[]]', Promise.resolve({ value, tags: [], stale: 300, timestamp: Date.now(), expire: 3600, revalidate: 900 }));
    const stored = Buffer.from((await backend.get(useCacheStoreKey(a.rt, '["build","fn",[]]')))!);
    expect(stored.subarray(0, 2).toString('latin1')).toBe('cE');
    expect(stored.includes(Buffer.from('4111'))).toBe(false);
    const b = instance(backend);
    const entry = await b.useCache.get('["build","fn",[]]', []);
    expect(await new Response(entry!.value).text()).toBe('rsc payload: card 4111');
  });

  it('a tampered entry, an entry moved to another key, or another master key: a miss, and the entry is evicted', async () => {
    const backend = new MemoryBackend();
    const a = instance(backend);
    await a.handler().set('/account', appPage(), { cacheControl });
    const key = pageKey(a.rt);
    const reader = () => instance(backend, { l1: false }).handler();

    const bytes = (await backend.get(key))!;
    bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 0x40;
    await backend.set(key, bytes, 3600);
    expect(await reader().get('/account', pageCtx)).toBeNull();
    expect(await backend.exists(key)).toBe(false);

    await a.handler().set('/other', appPage(), { cacheControl });
    await backend.set(key, (await backend.get(`${a.rt.keyPrefix}${a.rt.namespace}:build-1:r:/other`))!, 3600);
    expect(await reader().get('/account', pageCtx)).toBeNull();

    await a.handler().set('/account', appPage(), { cacheControl });
    const stranger = instance(backend, { l1: false, encryption: { masterKey: OTHER } }).handler();
    expect(await stranger.get('/account', pageCtx)).toBeNull();
    expect(await backend.exists(key)).toBe(false);
  });

  it('failClosed: the get fails (the user chose a failing page over a miss) and the entry stays', async () => {
    const backend = new MemoryBackend();
    const a = instance(backend);
    await a.handler().set('/account', appPage(), { cacheControl });
    const closed = instance(backend, { l1: false, encryption: { masterKey: OTHER, failClosed: true } }).handler();
    await expect(closed.get('/account', pageCtx)).rejects.toBeInstanceOf(EncryptionError);
    expect(await backend.exists(pageKey(a.rt))).toBe(true);
  });

  it('validates: no master key, bad shapes, and key material in next.config are ConfigErrors naming the option', () => {
    const saved = process.env.CACHEKIT_MASTER_KEY;
    delete process.env.CACHEKIT_MASTER_KEY;
    try {
      expect(() => new CacheStack({ backend: null, encryption: true })).toThrow(/CACHEKIT_MASTER_KEY/);
      expect(() => new CacheStack({ backend: null, encryption: { bogus: 1 } as never })).toThrow(/bogus/);
      expect(() => new CacheStack({ backend: null, encryption: 'yes' as never })).toThrow(/encryption/);
      expect(() => withCachekit({}, { encryption: { masterKey: MASTER } as never })).toThrow(ConfigError);
      expect(() => withCachekit({}, { encryption: { masterKey: MASTER } as never })).toThrow(/encryption\.masterKey.*CACHEKIT_MASTER_KEY/);
      process.env.CACHEKIT_MASTER_KEY = MASTER;
      const rt = new CacheStack({ backend: null, encryption: true });
      stacks.push(rt);
      expect(rt.encryptor).toBeDefined();
    } finally {
      if (saved === undefined) delete process.env.CACHEKIT_MASTER_KEY;
      else process.env.CACHEKIT_MASTER_KEY = saved;
      delete process.env.CACHEKIT_NEXT_OPTIONS;
    }
  });
});
