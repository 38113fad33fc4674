/**
 * Key and channel shapes, pinned: everything here is on the wire (other instances, older deployments, Python
 * cachekit read it), so a change must be deliberate and shows up as a changed vector.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBackend } from '../../src/backends/file.js';
import { cache } from '../../src/loaders/cache.js';
import { cachedFetchKey } from '../../src/wire/keys.js';
import * as keys from '../../src/wire/keys.js';
import { hashArgs } from '../../src/wire/loader-key.js';
import { resetForTests } from '../../src/shared/registry.js';

const scope = { keyPrefix: 'cachekit:', namespace: 'shop' };

describe('wire/keys.ts vectors', () => {
  it.each([
    ['handler page/route entry', keys.handlerEntryKey(scope, 'response', '/blog/post', 'build-7'), 'cachekit:shop:build-7:r:/blog/post'],
    ['handler fetch entry', keys.handlerEntryKey(scope, 'fetch', 'abc123', 'ignored'), 'cachekit:shop:f:abc123'],
    ['handler image entry', keys.handlerEntryKey(scope, 'image', 'img', 'ignored'), 'cachekit:shop:i:img'],
    ['use cache entry', keys.useCacheEntryKey(scope, 'k'), 'cachekit:shop:u:3038a3216fba1e955d90addce0a77d46bdef7b51cfeb73a273989a68e093f225'],
    ['loader scope', keys.loaderScope(scope, 'getUser'), 'cachekit:shop:fn:getUser'],
    ['loader entry', keys.loaderEntryKey(scope, 'getUser', 'h1'), 'cachekit:shop:fn:getUser:h1'],
    ['cachedFetch entry', cachedFetchKey(scope, 'h2'), 'cachekit:shop:fetch:h2'],
    ['tag key prefix', keys.tagKeyPrefix(scope), 'cachekit:{shop.tags}:'],
    ['tag stale state', keys.tagStateKey('cachekit:{shop.tags}:', 'stale', 'posts'), 'cachekit:{shop.tags}:s:posts'],
    ['tag expired state', keys.tagStateKey('cachekit:{shop.tags}:', 'expired', 'posts'), 'cachekit:{shop.tags}:e:posts'],
    ['handler channel', keys.handlerChannel(scope), 'cachekit:shop:invalidate'],
    ['loader channel', keys.loaderChannel(scope), 'cachekit:shop:fn:invalidate'],
    ['epoch', keys.epochKey('cachekit:shop:invalidate'), 'cachekit:shop:invalidate:epoch'],
    ['journal slot', keys.journalSlotKey('cachekit:shop:invalidate:epoch', 17), 'cachekit:shop:invalidate:epoch:17'],
    ['file lock lease', keys.fileLockName('ab'.repeat(32)), `${'ab'.repeat(32)}.lock`],
    ['redis lock key', keys.redisLockKey('app:', 'k').toString('latin1'), 'app:\xfflock:k'],
  ])('%s', (_name, actual, expected) => {
    expect(actual).toBe(expected);
  });

  it("hashes 'use cache' keys over UTF-16 units: keys differing only in a lone surrogate stay apart", () => {
    expect(keys.useCacheEntryKey(scope, 'a\ud800')).not.toBe(keys.useCacheEntryKey(scope, 'a\ud801'));
    expect(keys.useCacheEntryKey(scope, 'k')).toMatch(/^cachekit:shop:u:[0-9a-f]{64}$/);
  });

  it('puts every app-scoped key and channel under {keyPrefix}{namespace}: (tag keys in their hash tag)', () => {
    const other = { keyPrefix: 'cachekit:', namespace: 'blog' };
    const all = (s: typeof scope) => [
      keys.handlerEntryKey(s, 'response', 'x', 'b'),
      keys.useCacheEntryKey(s, 'x'),
      keys.loaderEntryKey(s, 'f', 'x'),
      cachedFetchKey(s, 'x'),
      keys.handlerChannel(s),
      keys.loaderChannel(s),
      keys.epochKey(keys.loaderChannel(s)),
    ];
    for (const key of all(scope)) expect(key.startsWith('cachekit:shop:'), key).toBe(true);
    for (const key of all(other)) expect(key.startsWith('cachekit:blog:'), key).toBe(true);
    expect(keys.tagKeyPrefix(other)).toBe('cachekit:{blog.tags}:');
  });
});

describe('the loaders invalidation channel', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cachekit-keys-'));
  afterAll(async () => {
    await resetForTests();
    rmSync(dir, { recursive: true, force: true });
  });

  // Was `${keyPrefix}fn:invalidate` for every namespace: apps sharing a store bumped one epoch and flushed each other's L1.
  it("is the namespace's own: a cache(fn) write in app A moves A's epoch, not one shared with app B", async () => {
    const backend = new FileBackend({ cacheDir: dir });
    const getUser = cache(async (id: number) => ({ id }), { name: 'getUser', namespace: 'app-a', backend });
    await getUser(1);
    await getUser.invalidate(1);
    expect(getUser.keyFor(1)).toBe(`cachekit:app-a:fn:getUser:${hashArgs([1])}`);
    expect(await backend.exists(keys.epochKey('cachekit:app-a:fn:invalidate'))).toBe(true);
    expect(await backend.exists('cachekit:fn:invalidate:epoch')).toBe(false);
    expect(await backend.exists(keys.epochKey('cachekit:app-b:fn:invalidate'))).toBe(false);
  });
});
