/**
 * The L2 guard (store/l2-guard.ts) on real servers: the deadline classifies a call that never answers as a timeout,
 * the breaker opens after N failures and lets one probe through after its cooldown, every fault is reported once,
 * and a throwing onError hook never breaks a call. Then the stack: every L2 call goes through it, publish included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBackend } from '../../src/backends/redis.js';
import { BackendError } from '../../src/protocol/backend.js';
import { getStack, resetStacks } from '../../src/stack/stack.js';
import { L2Guard } from '../../src/store/l2-guard.js';
import { TieredCache } from '../../src/store/tiered.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { cache } from '../../src/loaders/cache.js';
import { rejection } from '../support/errors.js';
import { httpBackend } from '../support/http-kv.js';
import { refusedAddress, startBlackhole, startRedis, type Blackhole, type ServerHandle } from '../support/servers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bytes = (text: string) => new TextEncoder().encode(text);
const SLOW = { connectTimeoutMs: 2_000, commandTimeoutMs: 2_000 };

let hole: Blackhole;
beforeAll(async () => {
  hole = await startBlackhole();
});
afterAll(async () => {
  await resetStacks();
  await hole.stop();
});

describe('the deadline', () => {
  it('classifies a Redis that accepts and never answers as a timeout of the named operation, long before its own timeouts', async () => {
    const backend = new RedisBackend({ url: `redis://${hole.address}`, ...SLOW });
    try {
      const guard = new L2Guard({ backend, timeoutMs: 200, breaker: false });
      const error = await rejection(guard.call('getTags', () => backend.get('k')));
      expect(error).toMatchObject({ kind: 'timeout', operation: 'getTags', backend: 'redis' });
    } finally {
      await backend.close();
    }
  });

  it('does the same for a custom HTTP backend, and turns a synchronous throw into a rejection', async () => {
    const backend = httpBackend(`http://${hole.address}`, 10_000);
    const guard = new L2Guard({ backend, timeoutMs: 200, breaker: false });
    expect(await rejection(guard.call('epochRead', () => backend.get('k')))).toMatchObject({ kind: 'timeout', operation: 'epochRead', backend: 'custom' });
    const thrown = guard.call('get', () => {
      throw new BackendError('refused before any I/O', { kind: 'permanent', backend: 'custom' });
    });
    expect(await rejection(thrown)).toMatchObject({ kind: 'permanent' });
  });
});

describe('the breaker', () => {
  let redis: ServerHandle & { url: string };
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('opens after N failures, lets one probe through after the cooldown, and closes when the probe succeeds', async () => {
    const backend = new RedisBackend({ url: redis.url, connectTimeoutMs: 300, commandTimeoutMs: 300, maxReconnectDelayMs: 50 });
    try {
      const guard = new L2Guard({ backend, timeoutMs: 1_000, breaker: { failureThreshold: 3, cooldownMs: 300 } });
      const state = () => guard.breaker?.state;
      let calls = 0;
      const get = () =>
        guard.call('get', () => {
          calls++;
          return backend.get('k');
        });
      await backend.set('k', bytes('v'));
      expect(await get()).not.toBeNull();
      await redis.stop(); // SIGKILL: the backend now fails every call
      for (let i = 0; i < 3; i++) expect((await rejection(get())).retryable).toBe(true);
      expect(calls).toBe(4);
      expect(state()).toBe('open');
      expect((await rejection(get())).message).toMatch(/circuit open/);
      expect(calls).toBe(4); // short-circuited: the backend was not called

      await sleep(350);
      expect(state()).toBe('half-open');
      const probe = get();
      expect((await rejection(get())).message).toMatch(/circuit open/); // one probe at a time
      await rejection(probe); // still down: open again at once
      expect(calls).toBe(5);
      expect((await rejection(get())).message).toMatch(/circuit open/);
      expect(calls).toBe(5);

      redis = await startRedis({ port: redis.port });
      await sleep(350);
      // The probe may meet the client still reconnecting: it then reopens, and a later probe closes the circuit.
      for (let attempt = 0; state() !== 'closed' && attempt < 40; attempt++) {
        await get().catch(() => {});
        if (state() !== 'closed') await sleep(350);
      }
      expect(state()).toBe('closed');
      expect(await get()).toBeNull(); // answered: a fresh server holds nothing
    } finally {
      await backend.close();
    }
  });
});

describe('reports', () => {
  it('one report per failure, as a classified BackendError, short-circuited calls included', async () => {
    const { address } = await refusedAddress();
    const backend = new RedisBackend({ url: `redis://${address}`, connectTimeoutMs: 300, commandTimeoutMs: 300 });
    try {
      const reports: { error: BackendError; operation: string; key?: string | undefined; cache: string }[] = [];
      const cache = new TieredCache({
        backend,
        name: 'reports',
        breaker: { failureThreshold: 2, cooldownMs: 60_000 },
        onError: (error, context) => reports.push({ error, ...context }),
      });
      for (let i = 0; i < 5; i++) expect(await cache.get(`k${i}`)).toBeNull();
      expect(await cache.set('k', bytes('v'))).toBe(false);
      expect(reports.map((r) => [r.operation, r.key, r.cache])).toEqual([
        ['get', 'k0', 'reports'],
        ['get', 'k1', 'reports'],
        ['get', 'k2', 'reports'],
        ['get', 'k3', 'reports'],
        ['get', 'k4', 'reports'],
        ['set', 'k', 'reports'],
      ]);
      expect(reports.every((r) => BackendError.is(r.error) && r.error.retryable)).toBe(true);
      expect(cache.stats().errors).toBe(6);
    } finally {
      await backend.close();
    }
  });

  it('wraps anything else as kind unknown, keeps it as the cause, and survives a throwing onError hook', async () => {
    const guard = new L2Guard({
      backend: null,
      timeoutMs: 100,
      onError: () => {
        throw new Error('the hook itself fails');
      },
      name: 'hooked',
    });
    const cause = new TypeError('not bytes');
    const reported = guard.report(cause, 'get', 'k');
    expect(reported).toMatchObject({ kind: 'unknown', operation: 'get', key: 'k', backend: 'none' });
    expect(reported.cause).toBe(cause);
    const original = new BackendError('down', { kind: 'transient', backend: 'redis' });
    expect(guard.report(original, 'set')).toBe(original);
  });

  it('a throwing hook turns nothing into a page error: the handler still answers a miss', async () => {
    const backend = new RedisBackend({ url: `redis://${hole.address}`, ...SLOW });
    try {
      let hooked = 0;
      const stack = getStack({
        backend,
        namespace: 'guard-hook',
        timeoutMs: 150,
        breaker: false,
        readYourWrites: false,
        onError: () => {
          hooked++;
          throw new Error('the hook itself fails');
        },
      });
      const Handler = handlerClassFor(() => stack);
      await expect(new Handler().get('/p', { kind: 'APP_PAGE' })).resolves.toBeNull();
      expect(hooked).toBeGreaterThanOrEqual(1);
    } finally {
      await resetStacks();
      await backend.close();
    }
  });
});

describe('every L2 call of the stack goes through the guard', () => {
  let redis: ServerHandle & { url: string };
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await resetStacks();
    await redis.stop();
  });

  it('a publish that never answers: revalidateTag resolves within the deadline and reports a publish timeout', async () => {
    class StuckPublishRedis extends RedisBackend {
      override publish(): Promise<void> {
        return new Promise<void>(() => {}); // the server took the command and never answered
      }
    }
    const backend = new StuckPublishRedis({ url: redis.url });
    try {
      const reports: { kind: string; operation: string }[] = [];
      const stack = getStack({
        backend,
        namespace: 'guard-publish',
        timeoutMs: 200,
        onError: (error, context) => reports.push({ kind: error.kind, operation: context.operation }),
      });
      const Handler = handlerClassFor(() => stack);
      await new Handler().revalidateTag('posts');
      expect(reports).toContainEqual({ kind: 'timeout', operation: 'publish' });
      // The tag event itself reached the shared store: another instance sees it.
      const other = new RedisBackend({ url: redis.url });
      try {
        expect(await other.get(`cachekit:{guard-publish.tags}:e:posts`)).not.toBeNull();
      } finally {
        await other.close();
      }
    } finally {
      await resetStacks();
      await backend.close();
    }
  });

  it('tag reads use the stack deadline: a hanging tag read is a timeout reported as getTags, and the entry is served', async () => {
    class StuckTagsRedis extends RedisBackend {
      override getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
        if (keys.some((key) => key.includes('.tags}'))) return new Promise(() => {});
        return super.getMany(keys);
      }
    }
    const backend = new StuckTagsRedis({ url: redis.url });
    try {
      const reports: { kind: string; operation: string }[] = [];
      const stack = getStack({
        backend,
        namespace: 'guard-tags',
        timeoutMs: 200,
        onError: (error, context) => reports.push({ kind: error.kind, operation: context.operation }),
      });
      const Handler = handlerClassFor(() => stack);
      const value = { kind: 'FETCH' as const, data: { headers: {}, body: 'e30=', status: 200, url: '/x' }, revalidate: 60, tags: ['t'] };
      await new Handler().set('k', value, { fetchCache: true, tags: ['t'] });
      const got = await new Handler().get('k', { kind: 'FETCH', tags: ['t'] });
      expect(got?.value).toMatchObject({ kind: 'FETCH' });
      expect(reports).toContainEqual({ kind: 'timeout', operation: 'getTags' });
    } finally {
      await resetStacks();
      await backend.close();
    }
  });

  it("a loader's lock call that never answers: the call computes unlocked within the deadline, the fault reported", async () => {
    class StuckLockRedis extends RedisBackend {
      override acquireLock(): Promise<string | null> {
        return new Promise(() => {});
      }
    }
    const backend = new StuckLockRedis({ url: redis.url });
    try {
      const reports: { kind: string | undefined; operation: string }[] = [];
      const f = cache(async () => 'computed', {
        backend,
        name: 'guardLock',
        timeoutMs: 200,
        onError: (error, context) => reports.push({ kind: BackendError.is(error) ? error.kind : undefined, operation: context.operation }),
      });
      expect(await f()).toBe('computed');
      expect(reports).toContainEqual({ kind: 'timeout', operation: 'acquireLock' });
    } finally {
      await backend.close();
    }
  });
});
