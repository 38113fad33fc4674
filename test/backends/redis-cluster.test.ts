import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisBackend, redisHashTag } from '../../src/backends/redis.js';
import { BackendError } from '../../src/protocol/backend.js';
import { redisCli } from '../support/redis-servers.js';
import { refusedAddress, startBlackhole, startRedisCluster, type ClusterHandle } from '../support/servers.js';
import { testBackendConformance } from '../../src/testing.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | null) => (value === null ? null : Buffer.from(value).toString());
const FAST = { connectTimeoutMs: 1_000, commandTimeoutMs: 500 };

let cluster: ClusterHandle;
beforeAll(async () => {
  cluster = await startRedisCluster(3);
});
afterAll(async () => {
  await cluster?.stop();
});

const ports = () => cluster.nodes.map((node) => Number(node.split(':')[1]));
const keySlot = async (key: string) => Number(await redisCli(ports()[0]!, 'cluster', 'keyslot', key));

/** The port of the master that holds `key` (asks each node whether it has it). */
async function holderOf(key: string): Promise<number[]> {
  const holders: number[] = [];
  for (const port of ports()) if ((await redisCli(port, 'exists', key)) === '1') holders.push(port);
  return holders;
}

testBackendConformance(
  {
    name: 'RedisBackend (cluster)',
    capabilities: ['batch', 'ttl', 'locks', 'add', 'invalidation'],
    backendType: 'redis',
    // One startup node is enough: the others are discovered.
    create: () => new RedisBackend({ nodes: [cluster.nodes[0]!], keyPrefix: 'conformance:' }),
    unreachable: {
      refused: async () => {
        const addresses = await Promise.all([refusedAddress(), refusedAddress()]);
        return { backend: new RedisBackend({ nodes: addresses.map((a) => a.address), ...FAST }), boundMs: FAST.connectTimeoutMs };
      },
      blackhole: async () => {
        const hole = await startBlackhole();
        return { backend: new RedisBackend({ nodes: [{ host: hole.host, port: hole.port }], ...FAST }), boundMs: FAST.connectTimeoutMs, cleanup: hole.stop };
      },
    },
  },
  { describe, it, beforeAll, afterAll },
);

describe('RedisBackend (cluster): slots', () => {
  it('spreads keys over the masters and reads them back across slots in one getMany', async () => {
    const backend = new RedisBackend({ nodes: cluster.nodes, keyPrefix: 'spread:' });
    try {
      const keys = Array.from({ length: 60 }, (_, i) => `key-${i}`);
      await backend.setMany(keys.map((key, i) => ({ key, value: bytes(`v${i}`), ttlSeconds: i % 2 === 0 ? 60 : undefined })));
      const slots = new Set(await Promise.all(keys.map((key) => keySlot(`spread:${key}`))));
      expect(slots.size).toBeGreaterThan(50);
      const holders = new Set<number>();
      for (const key of keys.slice(0, 15)) {
        const owners = await holderOf(`spread:${key}`);
        expect(owners).toHaveLength(1);
        holders.add(owners[0]!);
      }
      expect(holders.size).toBe(3); // every master holds some of them

      const values = await backend.getMany([...keys, 'missing']);
      expect(values.map(text)).toEqual([...keys.map((_, i) => `v${i}`), null]);
      expect(await redisCli(ports()[0]!, '-c', 'ttl', 'spread:key-0')).not.toBe('-1');
      expect(await redisCli(ports()[0]!, '-c', 'ttl', 'spread:key-1')).toBe('-1');
    } finally {
      await backend.close();
    }
  });

  it('keeps keys sharing a hash tag in one slot', async () => {
    const backend = new RedisBackend({ nodes: cluster.nodes, keyPrefix: 'tagged:' });
    try {
      const tag = redisHashTag('tag:products');
      const keys = [`${tag}:index`, `${tag}:entry:1`, `${tag}:entry:2`, `x${tag}`];
      await backend.setMany(keys.map((key) => ({ key, value: bytes(key) })));
      const slots = new Set(await Promise.all(keys.map((key) => keySlot(backend.fullKey(key)))));
      expect([...slots]).toEqual([await keySlot('tag:products')]);
      // Together on one node, so a multi-key command over them is legal.
      const [owner] = await holderOf(backend.fullKey(keys[0]!));
      const raw = await redisCli(owner!, 'mget', ...keys.map((key) => backend.fullKey(key)));
      expect(raw.split('\n')).toEqual(keys);
      expect((await backend.getMany(keys)).map(text)).toEqual(keys);
    } finally {
      await backend.close();
    }
  });

  it('sends the bytes given to set even if the caller reuses its buffer before the (pipelined) write', async () => {
    const backend = new RedisBackend({ nodes: cluster.nodes, keyPrefix: 'reuse:' });
    try {
      await backend.exists('warm');
      const buffer = bytes('original');
      const pending = [backend.set('a', buffer), backend.add('b', buffer), backend.setMany([{ key: 'c', value: buffer }])];
      buffer.fill(0x58); // auto-pipelining writes on a later tick
      await Promise.all(pending);
      expect((await backend.getMany(['a', 'b', 'c'])).map(text)).toEqual(['original', 'original', 'original']);
    } finally {
      await backend.close();
    }
  });

  it('reports cluster mode in health', async () => {
    const backend = new RedisBackend({ nodes: cluster.nodes });
    try {
      const [healthy, details] = await backend.healthCheck();
      expect(healthy).toBe(true);
      expect(details).toMatchObject({ backend_type: 'redis', mode: 'cluster' });
      expect(details.redis_version).toMatch(/^\d+\./);
    } finally {
      await backend.close();
    }
  });

  it('fails with a transient error, not a hang, for commands on a cluster that went away', async () => {
    const doomed = await startRedisCluster(3);
    const backend = new RedisBackend({ nodes: doomed.nodes, ...FAST });
    try {
      await backend.set('k', bytes('v'));
      await doomed.stop();
      for (const op of [() => backend.get('k'), () => backend.set('k', bytes('v')), () => backend.getMany(['a', 'b', 'c'])]) {
        const started = Date.now();
        const error = await op().then(
          () => new Error('resolved'),
          (e: unknown) => e,
        );
        expect(BackendError.is(error), String(error)).toBe(true);
        expect(['transient', 'timeout']).toContain((error as BackendError).kind);
        expect(Date.now() - started).toBeLessThan(FAST.connectTimeoutMs + 1_500);
      }
      expect((await backend.healthCheck())[0]).toBe(false);
    } finally {
      await backend.close();
    }
  });

  it('moves the subscriber to a live node when its node dies, and resyncs', async () => {
    const own = await startRedisCluster(3);
    const backend = new RedisBackend({ nodes: own.nodes, ...FAST, maxReconnectDelayMs: 200 });
    try {
      const got: string[] = [];
      let resyncs = 0;
      await backend.subscribe(
        'invalidate',
        (m) => got.push(m),
        () => resyncs++,
      );
      const nodePorts = own.nodes.map((node) => Number(node.split(':')[1]));
      const subscriberPorts: number[] = [];
      for (const port of nodePorts) if ((await redisCli(port, 'client', 'list')).includes('name=cachekit-next:sub ')) subscriberPorts.push(port);
      expect(subscriberPorts).toHaveLength(1);
      const dead = subscriberPorts[0]!;
      await redisCli(dead, 'shutdown', 'nosave').catch(() => ''); // the reply never comes: the server is gone
      const deadline = Date.now() + 10_000;
      while (resyncs === 0 && Date.now() < deadline) await sleep(50);
      expect(resyncs).toBe(1);
      const live = nodePorts.find((port) => port !== dead)!;
      // Any node relays a PUBLISH to the whole cluster, wherever the subscriber now is.
      await redisCli(live, 'publish', 'invalidate', 'after the move');
      while (got.length === 0 && Date.now() < deadline) await sleep(20);
      expect(got).toEqual(['after the move']);
    } finally {
      await backend.close();
      await own.stop();
    }
  });
});
