import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HASHED_KEY_MARKER, MEMCACHED_MAX_TTL_SECONDS, MemcachedBackend } from '../../src/backends/memcached.js';
import { memcachedStats, serverTtl, startMemcachedAt, startTruncatingServer } from '../support/memcached-servers.js';
import { refusedAddress, startBlackhole, startMemcached, type ServerHandle } from '../support/servers.js';
import { testBackendConformance } from '../../src/testing.js';
import { rejection } from '../support/errors.js';

const MiB = 1024 * 1024;
const FAST = { timeoutMs: 500, connectTimeoutMs: 500 };
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | null) => (value === null ? null : Buffer.from(value).toString('utf8'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** TTL on whichever of `servers` holds the stored key; fails when not exactly one holds it. */
async function ttlOnServers(servers: ServerHandle[], storedKey: string): Promise<number> {
  const found = (await Promise.all(servers.map((s) => serverTtl(s.address, storedKey)))).filter((t) => t !== undefined);
  expect(found, `${storedKey} held by ${found.length} servers`).toHaveLength(1);
  return found[0]!;
}

let first: ServerHandle;
let second: ServerHandle;

beforeAll(async () => {
  [first, second] = await Promise.all([startMemcached({ maxItemMb: 8 }), startMemcached({ maxItemMb: 8 })]);
});

afterAll(async () => {
  await Promise.all([first?.stop(), second?.stop()]);
});

testBackendConformance(
  {
    name: 'MemcachedBackend (two servers)',
    capabilities: ['ttl', 'add', 'counter'],
    backendType: 'memcached',
    create: () => new MemcachedBackend({ servers: [first.address, second.address], maxItemSizeBytes: 8 * MiB }),
    unreachable: {
      stopped: async () => {
        const server = await startMemcached();
        const backend = new MemcachedBackend({ servers: [server.address], ...FAST });
        await backend.set('warm', bytes('v'));
        await server.stop();
        return { backend, boundMs: backend.boundMs };
      },
      refused: async () => {
        const backend = new MemcachedBackend({ servers: [(await refusedAddress()).address], ...FAST });
        return { backend, boundMs: backend.boundMs };
      },
      blackhole: async () => {
        const hole = await startBlackhole();
        const backend = new MemcachedBackend({ servers: [hole.address], ...FAST });
        return { backend, boundMs: backend.boundMs, cleanup: () => hole.stop() };
      },
    },
  },
  { describe, it, beforeAll, afterAll },
);

describe('MemcachedBackend specifics', () => {
  let backend: MemcachedBackend;
  let prefix: string;

  beforeAll(async () => {
    prefix = `t${randomUUID().slice(0, 8)}:`;
    backend = new MemcachedBackend({ servers: [first.address, second.address], keyPrefix: prefix, maxItemSizeBytes: 8 * MiB });
    await backend.exists('warm');
  });

  afterAll(async () => {
    await backend.close();
  });

  it('clamps a TTL over 30 days so the entry is stored and readable, not expired at once', async () => {
    const key = `forty-days:${randomUUID()}`;
    await backend.set(key, bytes('kept'), 40 * 86_400);
    expect(text(await backend.get(key))).toBe('kept');
    const ttl = (await backend.getTtl(key))!;
    expect(ttl).toBeGreaterThan(MEMCACHED_MAX_TTL_SECONDS - 10);
    expect(ttl).toBeLessThanOrEqual(MEMCACHED_MAX_TTL_SECONDS);
    // The server's own expiry agrees (read over the text protocol, bypassing the client).
    const onServer = await ttlOnServers([first, second], backend.keyFor(key));
    expect(onServer).toBeGreaterThan(MEMCACHED_MAX_TTL_SECONDS - 10);
    expect(onServer).toBeLessThanOrEqual(MEMCACHED_MAX_TTL_SECONDS);
  });

  it('sends a TTL and its flags-expiry consistently, and clears both on a set without TTL', async () => {
    const key = `ttl:${randomUUID()}`;
    await backend.set(key, bytes('a'), 100);
    expect(await ttlOnServers([first, second], backend.keyFor(key))).toBeGreaterThan(95);
    expect((await backend.getWithTtl(key))!.ttlMs).toBeGreaterThan(95_000);
    await backend.set(key, bytes('b'));
    expect(await ttlOnServers([first, second], backend.keyFor(key))).toBe(-1);
    expect(await backend.getWithTtl(key)).toEqual({ value: Buffer.from('b'), ttlMs: null });
  });

  it('refreshTtl changes the server expiry and the reported TTL, keeping the bytes', async () => {
    const key = `refresh:${randomUUID()}`;
    const value = new Uint8Array(randomBytes(300_000));
    await backend.set(key, value, 50);
    expect(await backend.refreshTtl(key, 5_000)).toBe(true);
    expect(await ttlOnServers([first, second], backend.keyFor(key))).toBeGreaterThan(4_990);
    expect(await backend.getTtl(key)).toBeGreaterThan(4_990);
    expect(Buffer.compare(Buffer.from((await backend.get(key))!), Buffer.from(value))).toBe(0);
    await backend.set(key, bytes('forever'));
    expect(await backend.refreshTtl(key, 20)).toBe(true);
    expect(await backend.getTtl(key)).toBeLessThanOrEqual(20);
    expect(await backend.refreshTtl(`absent:${randomUUID()}`, 20)).toBe(false);
  });

  it('refreshTtl never brings back a value replaced while it ran (CAS-guarded rewrite)', async () => {
    const key = `refresh-race:${randomUUID()}`;
    await backend.set(key, bytes('old'), 50);
    // Same server, same connection: the set is pipelined right behind refreshTtl's read, before its rewrite.
    const [refreshed] = await Promise.all([backend.refreshTtl(key, 1_000), backend.set(key, bytes('new'), 10)]);
    expect(refreshed).toBe(true);
    expect(text(await backend.get(key))).toBe('new');
    const ttl = (await backend.getTtl(key))!;
    expect(Math.abs(ttl - (await ttlOnServers([first, second], backend.keyFor(key))))).toBeLessThanOrEqual(1);
  });

  it('rounds a fractional TTL up instead of storing it forever', async () => {
    const key = `fraction:${randomUUID()}`;
    await backend.set(key, bytes('brief'), 0.2);
    expect(await backend.getTtl(key)).toBe(1);
    await sleep(2_200);
    expect(await backend.get(key)).toBeNull();
  });

  it('rejects a negative or non-finite TTL as a permanent error', async () => {
    for (const ttl of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const error = await rejection(backend.set('bad-ttl', bytes('v'), ttl));
      expect(error.kind).toBe('permanent');
      expect(error.message).toMatch(/ttlSeconds/);
    }
    expect((await rejection(backend.refreshTtl('bad-ttl', 0))).kind).toBe('permanent');
  });

  it('sends a key of exactly 250 bytes unhashed, and hashes one of 251', async () => {
    const stem = `exact:${randomUUID()}:`;
    const exact = stem + 'x'.repeat(250 - Buffer.byteLength(prefix + stem));
    expect(Buffer.byteLength(prefix + exact)).toBe(250);
    expect(backend.keyFor(exact)).toBe(prefix + exact);
    await backend.set(exact, bytes('plain'), 60);
    expect(await ttlOnServers([first, second], prefix + exact)).toBeGreaterThan(50);

    const over = `${exact}y`;
    const hashed = backend.keyFor(over);
    expect(hashed).toMatch(new RegExp(`^${prefix}${HASHED_KEY_MARKER}[0-9a-f]{64}$`));
    await backend.set(over, bytes('hashed'), 60);
    expect(await ttlOnServers([first, second], hashed)).toBeGreaterThan(50);
    expect(text(await backend.get(exact))).toBe('plain');
    expect(text(await backend.get(over))).toBe('hashed');
  });

  it('counts UTF-8 bytes, not characters, against the 250-byte limit', () => {
    const euros = '€'.repeat(Math.ceil((251 - prefix.length) / 3)); // fewer than 250 characters, over 250 bytes
    expect(euros.length).toBeLessThan(250);
    expect(backend.keyFor(euros).startsWith(prefix + HASHED_KEY_MARKER)).toBe(true);
    expect(backend.keyFor('ключ')).toBe(`${prefix}ключ`);
  });

  it('hashes keys with spaces or control characters, keeping every key distinct', async () => {
    const base = `ctl:${randomUUID()}`;
    const keys = [`${base} a`, `${base}\ta`, `${base}\na`, `${base}\ra`, `${base}\u0000a`, `${base}\u007fa`, `${base}  a`, `${base}\uD800`, `${base}\uD801`];
    const stored = keys.map((k) => backend.keyFor(k));
    for (const s of stored) expect(s).toMatch(new RegExp(`^${prefix}${HASHED_KEY_MARKER}[0-9a-f]{64}$`));
    expect(new Set(stored).size).toBe(keys.length);
    await Promise.all(keys.map((k, i) => backend.set(k, bytes(`v${i}`))));
    for (const [i, k] of keys.entries()) expect(text(await backend.get(k))).toBe(`v${i}`);
  });

  it('never lets a plain key equal a hashed one', async () => {
    const long = `long:${'z'.repeat(300)}`;
    const hashed = backend.keyFor(long);
    const lookalike = hashed.slice(prefix.length); // a caller key spelling out the hashed form
    expect(backend.keyFor(lookalike)).not.toBe(hashed);
    await backend.set(long, bytes('long'));
    await backend.set(lookalike, bytes('lookalike'));
    expect(text(await backend.get(long))).toBe('long');
    expect(text(await backend.get(lookalike))).toBe('lookalike');
  });

  it('refuses a value over maxItemSizeBytes client-side with a clear permanent error', async () => {
    const key = `oversize:${randomUUID()}`;
    const size = 8 * MiB + 1;
    for (const write of [() => backend.set(key, new Uint8Array(size), 60), () => backend.add(key, new Uint8Array(size))]) {
      const error = await rejection(write());
      expect(error.kind).toBe('permanent');
      expect(error.message).toContain(`${size} bytes`);
      expect(error.message).toContain(`maxItemSizeBytes (${8 * MiB} bytes)`);
    }
    expect(await backend.get(key)).toBeNull();
  });

  it("reports the server's own 'too large' reply as permanent and keeps the connection usable", async () => {
    const small = await startMemcached({ maxItemMb: 1 });
    const generous = new MemcachedBackend({ servers: [small.address], maxItemSizeBytes: 8 * MiB });
    try {
      const error = await rejection(generous.set('big', new Uint8Array(2 * MiB)));
      expect(error.kind).toBe('permanent');
      expect(error.message).toMatch(/2097152 bytes as too large/);
      await generous.set('after', bytes('fine'));
      expect(text(await generous.get('after'))).toBe('fine');
    } finally {
      await generous.close();
      await small.stop();
    }
  });

  it('adds only when absent, with the flags-expiry of its TTL', async () => {
    const key = `add:${randomUUID()}`;
    expect(await backend.add(key, bytes('one'), 30)).toBe(true);
    expect(await backend.add(key, bytes('two'))).toBe(false);
    expect(text(await backend.get(key))).toBe('one');
    expect(await backend.getTtl(key)).toBeLessThanOrEqual(30);
  });

  it('spreads keys over both servers, each key on exactly one', async () => {
    const [a, b] = await Promise.all([startMemcached(), startMemcached()]);
    const spread = new MemcachedBackend({ servers: [a.address, b.address] });
    try {
      const keys = Array.from({ length: 200 }, (_, i) => `spread:${i}`);
      await Promise.all(keys.map((k) => spread.set(k, bytes(k))));
      const [statsA, statsB] = await Promise.all([memcachedStats(a.address), memcachedStats(b.address)]);
      const itemsA = Number(statsA.curr_items);
      const itemsB = Number(statsB.curr_items);
      expect(itemsA + itemsB).toBe(200);
      expect(itemsA).toBeGreaterThan(50);
      expect(itemsB).toBeGreaterThan(50);
      for (const k of keys.slice(0, 40)) await ttlOnServers([a, b], spread.keyFor(k));
    } finally {
      await spread.close();
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('reports per-server health; unhealthy when any server is down', async () => {
    const [healthy, details] = await backend.healthCheck();
    expect(healthy).toBe(true);
    expect(details.servers).toEqual([
      { server: first.address, healthy: true, version: expect.stringMatching(/^1\.6\./) },
      { server: second.address, healthy: true, version: expect.stringMatching(/^1\.6\./) },
    ]);
    const refused = await refusedAddress();
    const half = new MemcachedBackend({ servers: [first.address, refused.address], ...FAST });
    try {
      const [ok, halfDetails] = await half.healthCheck();
      expect(ok).toBe(false);
      expect(halfDetails.servers).toEqual([
        { server: first.address, healthy: true, version: expect.any(String) },
        { server: refused.address, healthy: false, error: expect.stringContaining('ECONNREFUSED') },
      ]);
      expect(halfDetails.error).toContain('ECONNREFUSED');
    } finally {
      await half.close();
    }
  });

  it('works again after its server is stopped and restarted on the same port', async () => {
    const server = await startMemcached();
    const restartable = new MemcachedBackend({ servers: [server.address], ...FAST });
    let restarted: ServerHandle | undefined;
    try {
      await restartable.set('k', bytes('before'));
      await server.stop();
      const error = await rejection(restartable.get('k'));
      expect(error.kind).toBe('transient');
      expect((await restartable.healthCheck())[0]).toBe(false);
      restarted = await startMemcachedAt(server.port);
      expect(await restartable.get('k')).toBeNull(); // memcached keeps nothing across a restart
      await restartable.set('k', bytes('after'));
      expect(text(await restartable.get('k'))).toBe('after');
      expect((await restartable.healthCheck())[0]).toBe(true);
    } finally {
      await restartable.close();
      await restarted?.stop();
    }
  });

  it('fails fast when a connection dies mid-reply, then works against a new server on that port', async () => {
    const broken = await startTruncatingServer();
    // Long timeouts: the closed connection itself must fail the call, not a timer.
    const backend2 = new MemcachedBackend({ servers: [broken.address], timeoutMs: 3_000, connectTimeoutMs: 3_000 });
    let real: ServerHandle | undefined;
    try {
      const started = Date.now();
      const error = await rejection(backend2.get('k'));
      expect(error.kind).toBe('transient');
      expect(error.message).toContain('connection closed by the server');
      expect(Date.now() - started).toBeLessThan(1_000);
      await broken.stop();
      real = await startMemcachedAt(broken.port);
      // A half-read reply left over from the dead connection must not poison the new one.
      await backend2.set('k', bytes('fresh'));
      expect(text(await backend2.get('k'))).toBe('fresh');
    } finally {
      await backend2.close();
      await real?.stop();
    }
  });

  it('replaces a connection whose reply timed out, without leaking the old one', async () => {
    const hole = await startBlackhole();
    // A long connect timeout: each call must still end on the 200 ms reply timeout, not on the overall bound.
    const stuck = new MemcachedBackend({ servers: [hole.address], timeoutMs: 200, connectTimeoutMs: 5_000 });
    try {
      for (let i = 0; i < 4; i++) {
        const started = Date.now();
        expect((await rejection(stuck.get('k'))).kind).toBe('timeout');
        expect(Date.now() - started).toBeLessThan(1_500);
      }
      await sleep(100); // let the server see the last close
      expect(hole.acceptedConnections()).toBe(4);
      expect(hole.openConnections()).toBe(0);
    } finally {
      await stuck.close();
      await hole.stop();
    }
  });

  it('waits for calls in flight on close, then rejects new calls', async () => {
    const closing = new MemcachedBackend({ servers: [first.address, second.address], keyPrefix: prefix, maxItemSizeBytes: 8 * MiB });
    const key = `close:${randomUUID()}`;
    const write = closing.set(key, new Uint8Array(3 * MiB));
    await closing.close();
    await expect(write).resolves.toBeUndefined();
    const error = await rejection(closing.get(key));
    expect(error.kind).toBe('permanent');
    expect(error.message).toMatch(/after close/);
    expect((await backend.get(key))!.byteLength).toBe(3 * MiB);
  });
});
