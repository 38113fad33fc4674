/**
 * L1 coherence across instances on a real Redis: every write and tag change is announced over pub/sub and the other
 * instance drops its L1 copy; after the subscriber reconnects, the whole L1 is flushed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBackend } from '../../src/backends/redis.js';
import { handlerClassFor } from '../../src/next/cache-handler.js';
import { CacheStack } from '../../src/stack/stack.js';
import type { GetContext } from '../../src/wire/next-types.js';
import { freePort, startRedis } from '../support/servers.js';
import { appPage, fetchValue } from './fixtures.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pageCtx: GetContext = { kind: 'APP_PAGE' };
const cacheControl = { revalidate: 3600, expire: 86_400 };

let redis: Awaited<ReturnType<typeof startRedis>>;
const backends: RedisBackend[] = [];
const stacks: CacheStack[] = [];

async function instance(namespace: string) {
  const backend = new RedisBackend({ url: redis.url, commandTimeoutMs: 500, connectTimeoutMs: 500 });
  backends.push(backend);
  const rt = new CacheStack({ backend, namespace, deploymentId: 'd1', breaker: { cooldownMs: 200 } });
  stacks.push(rt);
  expect(await rt.ready).toBe(true); // subscribed
  const Handler = handlerClassFor(() => rt);
  return { rt, handler: () => new Handler({}) };
}

async function until(condition: () => Promise<boolean> | boolean, timeoutMs = 5_000): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
  return Date.now() - started;
}

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.all(stacks.map((rt) => rt.close()));
  await Promise.all(backends.map((b) => b.close()));
  await redis.stop();
});

describe('L1 coherence over Redis pub/sub', () => {
  it('a write on A drops the entry from B’s L1 (which otherwise never expires)', async () => {
    const [a, b] = [await instance('coh1'), await instance('coh1')];
    await a.handler().set('/p', appPage('v1'), { cacheControl });
    await sleep(50); // let A's announcement of its own write pass B before B caches the entry
    const first = await b.handler().get('/p', pageCtx);
    expect(first!.value).toMatchObject({ headers: { 'x-next-cache-tags': 'v1' } });
    expect(b.rt.entries.hasLocal(`cachekit:coh1:d1:r:/p`)).toBe(true);

    await a.handler().set('/p', appPage('v2'), { cacheControl });
    await until(
      async () => ((await b.handler().get('/p', pageCtx))?.value as { headers: Record<string, string> } | undefined)?.headers['x-next-cache-tags'] === 'v2',
    );
    expect(a.rt.bus.sent).toBeGreaterThanOrEqual(2);
    expect(b.rt.bus.received).toBeGreaterThanOrEqual(2);
  });

  it('a tag revalidated on A reaches B’s cached tag state at once', async () => {
    const [a, b] = [await instance('coh2'), await instance('coh2')];
    await a.handler().set('f1', fetchValue(), { fetchCache: true, tags: ['posts'] });
    const ctx: GetContext = { kind: 'FETCH', revalidate: 60, tags: ['posts'], softTags: [] };
    expect(await b.handler().get('f1', ctx)).not.toBeNull(); // B now trusts its local tag state for 30 s
    await sleep(2);
    await a.handler().revalidateTag('posts');
    await until(async () => (await b.handler().get('f1', ctx)) === null);
  });

  it('an instance ignores its own messages', async () => {
    const a = await instance('coh3');
    await a.handler().set('/own', appPage(), { cacheControl });
    await sleep(100);
    expect(a.rt.entries.hasLocal('cachekit:coh3:d1:r:/own')).toBe(true);
    expect(a.rt.bus.received).toBe(0);
  });

  it('flushes L1 after the subscriber reconnects, and shares again without a restart', async () => {
    const [a, b] = [await instance('coh4'), await instance('coh4')];
    await a.handler().set('/r', appPage(), { cacheControl });
    await sleep(50);
    expect(await b.handler().get('/r', pageCtx)).not.toBeNull();
    const key = 'cachekit:coh4:d1:r:/r';
    expect(b.rt.entries.hasLocal(key)).toBe(true);

    const port = redis.port;
    await redis.stop(); // messages published now are lost: the restarted Redis is empty, too
    expect(await b.handler().get('/missing', pageCtx)).toBeNull(); // fails fast, as a miss
    redis = await startRedis({ port });
    await until(() => !b.rt.entries.hasLocal(key), 15_000);

    await until(async () => {
      await a.handler().set('/after', appPage('after'), { cacheControl });
      return (await b.handler().get('/after', pageCtx)) !== null;
    }, 15_000);
  });

  it('an instance started while Redis was down flushes its L1 every coherence TTL, then subscribes when Redis comes up', async () => {
    const port = await freePort();
    const lateBackend = new RedisBackend({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 300, connectTimeoutMs: 300 });
    backends.push(lateBackend);
    const late = new CacheStack({ backend: lateBackend, namespace: 'coh5', deploymentId: 'd1', coherenceTtlSeconds: 0.2 });
    stacks.push(late);
    expect(await late.ready).toBe(false);
    await late.entries.set('cachekit:coh5:d1:r:/local', { lastModified: Date.now(), tags: [], value: null });
    expect(late.entries.hasLocal('cachekit:coh5:d1:r:/local')).toBe(true);
    await until(() => !late.entries.hasLocal('cachekit:coh5:d1:r:/local'), 2_000); // unprotected L1 is not kept

    const second = await startRedis({ port });
    try {
      const aBackend = new RedisBackend({ url: second.url });
      backends.push(aBackend);
      const a = new CacheStack({ backend: aBackend, namespace: 'coh5', deploymentId: 'd1' });
      stacks.push(a);
      expect(await a.ready).toBe(true);
      const A = handlerClassFor(() => a);
      await until(async () => {
        await new A({}).set('/ping', appPage(), { cacheControl });
        return late.bus.received > 0;
      }, 10_000);
    } finally {
      await Promise.all(stacks.splice(-2).map((rt) => rt.close()));
      await second.stop();
    }
  });
});

/** A RedisBackend whose SUBSCRIBE answers only once the test opens `gate`: a subscriber that connects slowly. */
class SlowSubscribe extends RedisBackend {
  open!: () => void;
  readonly gate = new Promise<void>((resolve) => (this.open = resolve));
  subscribed: Promise<unknown> | undefined;
  override subscribe(...args: Parameters<RedisBackend['subscribe']>): ReturnType<RedisBackend['subscribe']> {
    const subscribed = this.gate.then(() => super.subscribe(...args));
    this.subscribed = subscribed;
    return subscribed;
  }
}

describe('a write made while the first subscribe runs', () => {
  // Going live flushes the L1 (a copy made before was unprotected). A write made meanwhile used to land in the L1 and
  // be dropped at once: the next read went to the L2 (a CI run saw a cache(fn) hit come from 'l2'). Writers now wait
  // for the first attempt, as they wait for the epoch's first read.
  it('a handler set waits for it, and its L1 copy survives the flush', async () => {
    const backend = new SlowSubscribe({ url: redis.url, commandTimeoutMs: 500, connectTimeoutMs: 500 });
    backends.push(backend);
    const rt = new CacheStack({ backend, namespace: 'slowsub1', deploymentId: 'd1' });
    stacks.push(rt);
    const handler = handlerClassFor(() => rt);
    let done = false;
    const set = new handler({}).set('/p', appPage('v1'), { cacheControl }).then(() => (done = true));
    await sleep(30);
    expect(done).toBe(false);
    expect(rt.entries.hasLocal('cachekit:slowsub1:d1:r:/p')).toBe(false);
    backend.open();
    await set;
    expect(await rt.ready).toBe(true);
    expect(rt.entries.hasLocal('cachekit:slowsub1:d1:r:/p')).toBe(true);
    const read = await rt.entries.lookup('cachekit:slowsub1:d1:r:/p');
    expect(read?.source).toBe('l1');
  });

  it('a cache(fn) fill waits for it, and the next call is an L1 hit', async () => {
    const { cache } = await import('../../src/loaders/cache.js');
    const backend = new SlowSubscribe({ url: redis.url, commandTimeoutMs: 500, connectTimeoutMs: 500 });
    backends.push(backend);
    let computed = 0;
    const f = cache(async (id: number) => ({ id, n: ++computed }), { backend, ttl: 60, l1: { maxTtlSeconds: 60 }, name: 'slowsub2' });
    let done = false;
    const first = f(1).then((v) => {
      done = true;
      return v;
    });
    await until(() => computed === 1);
    await sleep(30);
    expect(done).toBe(false); // waiting for the subscription, before its L1 copy is made
    backend.open();
    expect(await first).toEqual({ id: 1, n: 1 });
    await backend.subscribed; // live: the flush ran (it is chained before this)
    const again = await f.detailed(1);
    expect(again.status).toBe('l1');
    expect(computed).toBe(1);
  });
});

/** A RedisBackend whose PUBLISH leaves only once the test opens `gate`. */
class SlowPublish extends RedisBackend {
  open!: () => void;
  readonly gate = new Promise<void>((resolve) => (this.open = resolve));
  published = 0;
  override async publish(channel: string, message: string): Promise<void> {
    await this.gate;
    await super.publish(channel, message);
    this.published++;
  }
}

describe('the announcement of a write over messages', () => {
  // A subscriber handles a message when it arrives, whether the writer waited for the PUBLISH reply or not: waiting
  // promised nothing more and cost a round trip per set (bench/handler-set.ts). Over the epoch the bump is still
  // awaited (test/next/read-your-writes.test.ts).
  it('a set returns before its PUBLISH is answered; the message still goes out, and close() waits for it', async () => {
    const backend = new SlowPublish({ url: redis.url, commandTimeoutMs: 2_000, connectTimeoutMs: 500 });
    backends.push(backend);
    const writer = new CacheStack({ backend, namespace: 'slowpub', deploymentId: 'd1' });
    expect(await writer.ready).toBe(true);
    const b = await instance('slowpub');
    await b.handler().set('/p', appPage('v1'), { cacheControl });
    expect((await b.handler().get('/p', pageCtx))?.value).toMatchObject({ headers: { 'x-next-cache-tags': 'v1' } });
    expect(b.rt.entries.hasLocal('cachekit:slowpub:d1:r:/p')).toBe(true);

    const Handler = handlerClassFor(() => writer);
    await new Handler({}).set('/p', appPage('v2'), { cacheControl }); // returns with the PUBLISH held back
    expect(backend.published).toBe(0);
    expect(b.rt.entries.hasLocal('cachekit:slowpub:d1:r:/p')).toBe(true); // not told yet
    let closed = false;
    const closing = writer.close().then(() => (closed = true));
    await sleep(30);
    expect(closed).toBe(false); // close() waits for the announcement on its way
    backend.open();
    await closing;
    expect(backend.published).toBe(1);
    await until(() => !b.rt.entries.hasLocal('cachekit:slowpub:d1:r:/p'));
    expect((await b.handler().get('/p', pageCtx))?.value).toMatchObject({ headers: { 'x-next-cache-tags': 'v2' } });
  });
});
