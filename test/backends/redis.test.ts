import { randomUUID } from 'node:crypto';
import { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisBackend, redisHashTag, redisKey, type RedisBackendOptions } from '../../src/backends/redis.js';
import { ConfigError } from '../../src/shared/options.js';
import { redisCli } from '../support/redis-servers.js';
import { refusedAddress, startBlackhole, startRedis } from '../support/servers.js';
import { testBackendConformance } from '../../src/testing.js';
import { rejection } from '../support/errors.js';
import { singleton } from '../../src/shared/registry.js';

type Server = Awaited<ReturnType<typeof startRedis>>;

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | null) => (value === null ? null : Buffer.from(value).toString());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const registry = () => singleton('redisConnections', () => new Map<string, { refs: number }>());

/** Short bounds for the failure tests: the first connect waits at most 1 s, a command 500 ms. */
const FAST = { connectTimeoutMs: 1_000, commandTimeoutMs: 500 } satisfies RedisBackendOptions;
const FAST_BOUND_MS = 1_000;

async function until<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs: number, label: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (accept(value)) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${label} within ${timeoutMs} ms; last: ${String(last)}`);
    await sleep(50);
  }
}

/** Connections our clients hold on `port`, by connection name. */
async function clientCount(port: number, name = 'cachekit-next'): Promise<number> {
  const list = await redisCli(port, 'client', 'list');
  return list.split('\n').filter((line) => line.includes(` name=${name} `)).length;
}

let server: Server;
beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server?.stop();
});

testBackendConformance(
  {
    name: 'RedisBackend (standalone)',
    capabilities: ['batch', 'ttl', 'locks', 'add', 'invalidation'],
    backendType: 'redis',
    create: () => new RedisBackend({ url: server.url, keyPrefix: 'conformance:' }),
    unreachable: {
      stopped: async () => {
        const doomed = await startRedis();
        const backend = new RedisBackend({ url: doomed.url, ...FAST });
        await backend.set('k', bytes('v'));
        await doomed.stop();
        return { backend, boundMs: FAST_BOUND_MS };
      },
      refused: async () => {
        const { port } = await refusedAddress();
        return { backend: new RedisBackend({ url: `redis://127.0.0.1:${port}`, ...FAST }), boundMs: FAST_BOUND_MS };
      },
      blackhole: async () => {
        const hole = await startBlackhole();
        return { backend: new RedisBackend({ url: `redis://${hole.address}`, ...FAST }), boundMs: FAST_BOUND_MS, cleanup: hole.stop };
      },
    },
  },
  { describe, it, beforeAll, afterAll },
);

describe('RedisBackend: one shared connection set per configuration', () => {
  it('shares one client among backends with equal options and closes it with the last reference', async () => {
    const options = { url: server.url, commandTimeoutMs: 901 }; // a configuration no other test uses
    const before = await clientCount(server.port);
    const backends = Array.from({ length: 20 }, (_, i) => new RedisBackend({ ...options, keyPrefix: `share-${i}:` }));
    await Promise.all(backends.map((backend, i) => backend.set('k', bytes(`v${i}`))));
    expect(await clientCount(server.port)).toBe(before + 1);
    const entries = [...registry().values()].filter((entry) => entry.refs === 20);
    expect(entries).toHaveLength(1);
    const entry = entries[0]!;

    // Closing all but one keeps the connection, and twice is harmless.
    for (const backend of backends.slice(1)) {
      await backend.close();
      await backend.close();
    }
    expect(entry.refs).toBe(1);
    expect(text(await backends[0]!.get('k'))).toBe('v0');
    expect(await clientCount(server.port)).toBe(before + 1);

    await backends[0]!.close();
    expect([...registry().values()]).not.toContain(entry);
    await until(
      () => clientCount(server.port),
      (n) => n === before,
      3_000,
      'the connection was not closed',
    );
    const error = await rejection(backends[0]!.get('k'));
    expect(error.kind).toBe('permanent');
    expect(error.message).toContain('closed');

    // A new backend after the last close gets a fresh connection.
    const again = new RedisBackend(options);
    expect(text(await again.get('k'))).toBeNull();
    await again.close();
  });

  it('shares one subscriber connection, created on the first subscribe', async () => {
    const options = { url: server.url, commandTimeoutMs: 902 };
    const before = await clientCount(server.port, 'cachekit-next:sub');
    const a = new RedisBackend(options);
    const b = new RedisBackend(options);
    await a.exists('warm');
    expect(await clientCount(server.port, 'cachekit-next:sub')).toBe(before);
    const got: string[] = [];
    const subA = await a.subscribe(
      'chan',
      (m) => got.push(`a:${m}`),
      () => {},
    );
    const subB = await b.subscribe(
      'chan',
      (m) => got.push(`b:${m}`),
      () => {},
    );
    const subB2 = await b.subscribe(
      'other',
      (m) => got.push(`b2:${m}`),
      () => {},
    );
    expect(await clientCount(server.port, 'cachekit-next:sub')).toBe(before + 1);
    await a.publish('chan', 'one');
    await a.publish('other', 'two');
    await until(
      async () => got.length,
      (n) => n === 3,
      3_000,
      'messages did not arrive',
    );
    expect(got.sort()).toEqual(['a:one', 'b2:two', 'b:one']);

    await subA.unsubscribe();
    await subA.unsubscribe(); // idempotent
    await a.publish('chan', 'three');
    await until(
      async () => got.length,
      (n) => n === 4,
      3_000,
      'message after unsubscribe did not arrive',
    );
    expect(got).toContain('b:three');
    expect(got).not.toContain('a:three');
    await subB.unsubscribe();
    await subB2.unsubscribe();
    await a.close();
    await b.close();
    await until(
      () => clientCount(server.port, 'cachekit-next:sub'),
      (n) => n === before,
      3_000,
      'the subscriber was not closed',
    );
  });

  it('shares the connection with a second copy of the module (as when Next loads ESM and CJS)', async () => {
    const options = { url: server.url, commandTimeoutMs: 903 };
    const specifier = '../../src/backends/redis.ts?second-copy';
    const copy = (await import(/* @vite-ignore */ specifier)) as typeof import('../../src/backends/redis.js');
    expect(copy.RedisBackend).not.toBe(RedisBackend);
    const before = await clientCount(server.port);
    const first = new RedisBackend(options);
    const second = new copy.RedisBackend(options);
    await first.set('copy', bytes('from the first copy'));
    expect(text(await second.get('copy'))).toBe('from the first copy');
    expect(await clientCount(server.port)).toBe(before + 1);
    await first.close();
    expect(text(await second.get('copy'))).toBe('from the first copy');
    await second.close();
    await until(
      () => clientCount(server.port),
      (n) => n === before,
      3_000,
      'the connection was not closed',
    );
  });
});

describe('RedisBackend: recovery after Redis restarts', () => {
  it('fails fast while Redis is down and recovers by itself, resyncing subscribers', async () => {
    const own = await startRedis();
    const backend = new RedisBackend({ url: own.url, ...FAST, maxReconnectDelayMs: 200 });
    try {
      const messages: string[] = [];
      let resyncs = 0;
      await backend.subscribe(
        'events',
        (m) => messages.push(m),
        () => resyncs++,
      );
      await backend.set('k', bytes('before'));
      expect(resyncs).toBe(0); // not after the first connection

      await own.stop();
      // Down for a while (many reconnect attempts, several at the backoff cap); every call fails fast meanwhile.
      const downUntil = Date.now() + 2_000;
      while (Date.now() < downUntil) {
        const started = Date.now();
        const error = await rejection(backend.get('k'));
        expect(error.kind).toBe('transient');
        expect(Date.now() - started).toBeLessThan(100);
        await sleep(100);
      }
      const [healthy, details] = await backend.healthCheck();
      expect(healthy).toBe(false);
      expect(details.error).toEqual(expect.any(String));

      const restarted = await startRedis({ port: own.port });
      try {
        // No persistence: the restarted server is empty, but the same backend object works again.
        await until(
          () => backend.set('k', bytes('after')),
          () => true,
          10_000,
          'the backend did not recover',
        );
        expect(text(await backend.get('k'))).toBe('after');
        await until(
          async () => resyncs,
          (n) => n >= 1,
          5_000,
          'onResync was not called',
        );
        // Resubscribed: messages flow again.
        await backend.publish('events', 'hello again');
        await until(
          async () => messages,
          (m) => m.includes('hello again'),
          3_000,
          'no message after the restart',
        );
        expect((await backend.healthCheck())[0]).toBe(true);
      } finally {
        await restarted.stop();
      }
    } finally {
      await backend.close();
    }
  });
});

describe('RedisBackend: pub/sub while Redis is down', () => {
  it('rejects subscribe and publish with a transient error within the bound', async () => {
    const { port } = await refusedAddress();
    const backend = new RedisBackend({ url: `redis://127.0.0.1:${port}`, ...FAST });
    try {
      for (const op of [
        () =>
          backend.subscribe(
            'c',
            () => {},
            () => {},
          ),
        () => backend.publish('c', 'm'),
      ]) {
        const started = Date.now();
        expect((await rejection(op())).kind).toBe('transient');
        expect(Date.now() - started).toBeLessThan(FAST_BOUND_MS);
      }
    } finally {
      await backend.close();
    }
  });
});

describe('RedisBackend: a server that stops answering', () => {
  it('times out within the bound while frozen, then recovers and resyncs subscribers', async () => {
    const own = await startRedis();
    const pid = Number(/process_id:(\d+)/.exec(await redisCli(own.port, 'info', 'server'))![1]);
    const backend = new RedisBackend({ url: own.url, ...FAST, maxReconnectDelayMs: 200 });
    let frozen = false;
    try {
      const messages: string[] = [];
      let resyncs = 0;
      await backend.subscribe(
        'events',
        (m) => messages.push(m),
        () => resyncs++,
      );
      await backend.set('k', bytes('v'));

      process.kill(pid, 'SIGSTOP'); // TCP stays up (the kernel even accepts new connections), nothing answers
      frozen = true;
      const started = Date.now();
      const error = await rejection(backend.get('k'));
      expect(['timeout', 'transient']).toContain(error.kind);
      expect(Date.now() - started).toBeLessThan(FAST.commandTimeoutMs + 500);
      const [healthy] = await backend.healthCheck();
      expect(healthy).toBe(false);
      // Long enough for the subscriber's liveness ping to notice (interval + timeout = 2 s here).
      await sleep(2_500);

      process.kill(pid, 'SIGCONT');
      frozen = false;
      await until(
        () => backend.get('k'),
        (v) => text(v) === 'v',
        10_000,
        'the backend did not recover',
      );
      await until(
        async () => resyncs,
        (n) => n >= 1,
        10_000,
        'the frozen subscriber was not replaced and resynced',
      );
      await backend.publish('events', 'after thaw');
      await until(
        async () => messages,
        (m) => m.includes('after thaw'),
        3_000,
        'no message after the thaw',
      );
    } finally {
      if (frozen) process.kill(pid, 'SIGCONT');
      await backend.close();
      await own.stop();
    }
  });
});

describe('RedisBackend: authentication', () => {
  let secured: Server;
  beforeAll(async () => {
    secured = await startRedis({ args: ['--requirepass', 'right-password'] });
  });
  afterAll(async () => {
    await secured?.stop();
  });

  it('reports a wrong password as kind authentication, on every call', async () => {
    const backend = new RedisBackend({ url: secured.url, password: 'wrong-password', ...FAST });
    try {
      for (let i = 0; i < 3; i++) {
        const error = await rejection(backend.get('k'));
        expect(error.kind).toBe('authentication');
        expect(error.message).toMatch(/WRONGPASS/);
      }
      const [healthy, details] = await backend.healthCheck();
      expect(healthy).toBe(false);
      expect(String(details.error)).toMatch(/WRONGPASS/);
    } finally {
      await backend.close();
    }
  });

  it('reports a missing password as kind authentication', async () => {
    const backend = new RedisBackend({ url: secured.url, ...FAST });
    try {
      const error = await rejection(backend.exists('k'));
      expect(error.kind).toBe('authentication');
      expect(error.message).toMatch(/NOAUTH/);
    } finally {
      await backend.close();
    }
  });

  it('connects with the password from the URL or from the options', async () => {
    const fromUrl = new RedisBackend({ url: `redis://:right-password@127.0.0.1:${secured.port}` });
    const fromOption = new RedisBackend({ url: secured.url, password: 'right-password' });
    try {
      await fromUrl.set('k', bytes('v'));
      expect(text(await fromOption.get('k'))).toBe('v');
    } finally {
      await fromUrl.close();
      await fromOption.close();
    }
  });
});

describe('RedisBackend: keys', () => {
  it('stores values under keyPrefix + key and keeps prefixes apart', async () => {
    const a = new RedisBackend({ url: server.url, keyPrefix: 'app-a:' });
    const b = new RedisBackend({ url: server.url, keyPrefix: 'app-b:' });
    try {
      const key = `shared ${randomUUID()}`;
      await a.set(key, bytes('A'));
      await b.set(key, bytes('B'));
      expect(a.fullKey(key)).toBe(`app-a:${key}`);
      expect(redisKey('app-a:', key)).toBe(a.fullKey(key));
      expect(await redisCli(server.port, 'get', `app-a:${key}`)).toBe('A');
      expect(await redisCli(server.port, 'get', `app-b:${key}`)).toBe('B');
      expect(await a.delete(key)).toBe(true);
      expect(text(await b.get(key))).toBe('B');
      expect(await a.exists(key)).toBe(false);

      // Channels are prefixed too.
      const heardByB: string[] = [];
      const sub = await b.subscribe(
        'news',
        (m) => heardByB.push(m),
        () => {},
      );
      await a.publish('news', 'for app a only');
      await b.publish('news', 'for app b');
      await until(
        async () => heardByB,
        (m) => m.length > 0,
        3_000,
        'no message',
      );
      await sleep(100);
      expect(heardByB).toEqual(['for app b']);
      await sub.unsubscribe();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps lock keys out of the value key space', async () => {
    const backend = new RedisBackend({ url: server.url, keyPrefix: 'locks:' });
    try {
      const key = `job-${randomUUID()}`;
      const token = await backend.acquireLock(key, 10_000);
      expect(token).not.toBeNull();
      const keys = (await redisCli(server.port, '--no-raw', 'keys', `locks:*${key}`)).split('\n');
      expect(keys).toHaveLength(1);
      expect(keys[0]).toContain('\\xfflock:'); // prefix, a 0xFF byte no UTF-8 key contains, then `lock:`
      // Not even a value key spelled like the lock key's text can reach it.
      await backend.set(`lock:${key}`, bytes('value'));
      await backend.set(`\uFFFDlock:${key}`, bytes('value'));
      expect(await backend.acquireLock(key, 10_000)).toBeNull();
      expect(await backend.releaseLock(key, token!)).toBe(true);
    } finally {
      await backend.close();
    }
  });

  it('sends the bytes given to set even if the caller reuses its buffer while the first connect is pending', async () => {
    const backend = new RedisBackend({ url: server.url, keyPrefix: 'reuse:', commandTimeoutMs: 904 }); // a fresh connection
    try {
      const buffer = bytes('original');
      const pending = backend.set('k', buffer);
      buffer.fill(0x58);
      await pending;
      expect(text(await backend.get('k'))).toBe('original');
    } finally {
      await backend.close();
    }
  });

  it('stores fractional TTLs in milliseconds and plain SET clears a TTL', async () => {
    const backend = new RedisBackend({ url: server.url, keyPrefix: 'ttl:' });
    try {
      await backend.exists('fractional'); // connected: the time below is the set's and the read's
      const written = performance.now();
      await backend.set('fractional', bytes('v'), 1.5);
      const ttl = await backend.getTtl('fractional');
      // Whole seconds, rounded up: 1.5 s left reads 2 (on a loaded machine more than 0.5 s may have passed: 1).
      if (performance.now() - written < 500) expect(ttl).toBe(2);
      else expect([1, 2]).toContain(ttl);
      const pttl = Number(await redisCli(server.port, 'pttl', 'ttl:fractional'));
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(1_500);
      await backend.set('fractional', bytes('v'));
      expect(await redisCli(server.port, 'ttl', 'ttl:fractional')).toBe('-1');
      expect(await backend.add('fractional', bytes('w'))).toBe(false);
    } finally {
      await backend.close();
    }
  });

  it('puts keys with the same hash tag together', () => {
    expect(redisHashTag('user:42')).toBe('{user:42}');
    expect(() => redisHashTag('')).toThrow(ConfigError);
    expect(() => redisHashTag('a}b')).toThrow(ConfigError);
  });
});

describe('RedisBackend: commands sent together leave in one socket write', () => {
  // A cold read sends the entry's GET, its PTTL and its tags' MGET at once. Each socket write is a system call that
  // also wakes the server; one write for the lot is what an ioredis pipeline would give, without its cost.
  it('the commands of one burst of microtasks are one write; commands a turn apart are one write each', async () => {
    const own = await startRedis();
    const backend = new RedisBackend({ url: own.url });
    const write = vi.spyOn(Socket.prototype, '_write');
    const writev = vi.spyOn(Socket.prototype, '_writev');
    /** The flushes to our own server since the last call. */
    const flushes = () => {
      const ours = (spy: typeof write | typeof writev) => spy.mock.contexts.filter((socket) => (socket as Socket).remotePort === own.port).length;
      const count = ours(write) + ours(writev);
      write.mockClear();
      writev.mockClear();
      return count;
    };
    try {
      await backend.set('k', bytes('v'), 60);
      await backend.set('t', bytes('1'));
      flushes();
      const [entry, tags, exists] = await Promise.all([backend.getWithTtl('k'), backend.getMany(['t', 'u']), backend.exists('k')]);
      expect(flushes()).toBe(1);
      expect(text(entry!.value)).toBe('v');
      expect(entry!.ttlMs).toBeGreaterThan(50_000);
      expect(tags.map(text)).toEqual(['1', null]);
      expect(exists).toBe(true);

      await backend.get('k');
      await new Promise((resolve) => setImmediate(resolve));
      await backend.get('k');
      expect(flushes()).toBe(2);
    } finally {
      write.mockRestore();
      writev.mockRestore();
      await backend.close();
      await own.stop();
    }
  });
});

describe('RedisBackend: health', () => {
  it('reports latency, mode and server version', async () => {
    const backend = new RedisBackend({ url: server.url });
    try {
      const [healthy, details] = await backend.healthCheck();
      expect(healthy).toBe(true);
      expect(details).toMatchObject({ backend_type: 'redis', mode: 'standalone' });
      expect(details.redis_version).toMatch(/^\d+\.\d+\.\d+/);
      expect(details.latency_ms).toBeGreaterThanOrEqual(0);
    } finally {
      await backend.close();
    }
  });
});

describe('RedisBackend: options', () => {
  const cases: [string, unknown, string][] = [
    ['no connection option', {}, 'url'],
    ['an http URL', { url: 'http://127.0.0.1:6379' }, 'url'],
    ['a string that is no URL', { url: 'not a url' }, 'url'],
    ['a non-numeric database path', { url: 'redis://127.0.0.1/cache' }, 'url'],
    ['URL query parameters', { url: 'redis://127.0.0.1/?family=6' }, 'url'],
    ['url and nodes', { url: 'redis://127.0.0.1', nodes: ['127.0.0.1:7000'] }, 'nodes'],
    ['an empty node list', { nodes: [] }, 'nodes'],
    ['a node without a port', { nodes: ['127.0.0.1'] }, 'nodes'],
    ['a node with a bad port', { nodes: [{ host: '127.0.0.1', port: 70000 }] }, 'nodes'],
    ['sentinels without a name', { sentinels: [{ host: '127.0.0.1', port: 26379 }] }, 'name'],
    ['a name without sentinels', { url: 'redis://127.0.0.1', name: 'mymaster' }, 'name'],
    ['a zero connect timeout', { url: 'redis://127.0.0.1', connectTimeoutMs: 0 }, 'connectTimeoutMs'],
    ['a negative command timeout', { url: 'redis://127.0.0.1', commandTimeoutMs: -1 }, 'commandTimeoutMs'],
    ['a misspelled option', { url: 'redis://127.0.0.1', keyprefix: 'x:' }, 'keyprefix'],
    ['a non-string prefix', { url: 'redis://127.0.0.1', keyPrefix: 42 }, 'keyPrefix'],
    ['a fractional db', { url: 'redis://127.0.0.1', db: 1.5 }, 'db'],
    ['a db in cluster mode', { nodes: ['127.0.0.1:7000'], db: 2 }, 'db'],
    ['tls false with rediss', { url: 'rediss://127.0.0.1', tls: false }, 'tls'],
    ['tls as a string', { url: 'redis://127.0.0.1', tls: 'yes' }, 'tls'],
  ];
  it.each(cases)('rejects %s naming the option', (_, options, option) => {
    let error: unknown;
    try {
      new RedisBackend(options as RedisBackendOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).option).toBe(option);
    expect((error as Error).message).toContain(`\`${option}\``);
  });

  it('never puts the password of a bad URL in the error', () => {
    expect(() => new RedisBackend({ url: 'redis://:hunter2@bad host/' })).toThrow(/^(?!.*hunter2)/s);
  });

  it('uses the database from the URL', async () => {
    const backend = new RedisBackend({ url: `${server.url}/3`, keyPrefix: 'db3:' });
    try {
      await backend.set('k', bytes('in db 3'));
      expect(await redisCli(server.port, '-n', '3', 'get', 'db3:k')).toBe('in db 3');
      expect(await redisCli(server.port, '-n', '0', 'exists', 'db3:k')).toBe('0');
    } finally {
      await backend.close();
    }
  });
});

describe('RedisBackend.fromEnv', () => {
  it('prefers CACHEKIT_REDIS_URL over REDIS_URL', async () => {
    const { port } = await refusedAddress();
    const backend = RedisBackend.fromEnv({ CACHEKIT_REDIS_URL: server.url, REDIS_URL: `redis://127.0.0.1:${port}` }, { keyPrefix: 'env:' });
    try {
      await backend.set('k', bytes('v'));
      expect(await redisCli(server.port, 'get', 'env:k')).toBe('v');
    } finally {
      await backend.close();
    }
  });

  it('falls back to REDIS_URL', async () => {
    const backend = RedisBackend.fromEnv({ REDIS_URL: server.url, CACHEKIT_REDIS_URL: '' });
    try {
      expect((await backend.healthCheck())[0]).toBe(true);
    } finally {
      await backend.close();
    }
  });

  it('lets explicit options win over the environment', async () => {
    const { port } = await refusedAddress();
    const backend = RedisBackend.fromEnv({ CACHEKIT_REDIS_URL: `redis://127.0.0.1:${port}` }, { url: server.url });
    try {
      expect((await backend.healthCheck())[0]).toBe(true);
    } finally {
      await backend.close();
    }
  });

  it('names the variable when it is missing or invalid', () => {
    expect(() => RedisBackend.fromEnv({})).toThrow(expect.objectContaining({ name: 'ConfigError', option: 'CACHEKIT_REDIS_URL' }));
    expect(() => RedisBackend.fromEnv({ REDIS_URL: 'http://localhost' })).toThrow(expect.objectContaining({ name: 'ConfigError', option: 'REDIS_URL' }));
    expect(() => RedisBackend.fromEnv({ CACHEKIT_REDIS_URL: 'nonsense' })).toThrow(
      expect.objectContaining({ name: 'ConfigError', option: 'CACHEKIT_REDIS_URL' }),
    );
  });
});
