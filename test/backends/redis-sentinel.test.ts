import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBackend } from '../../src/backends/redis.js';
import { startSentinel, redisCli, type SentinelHandle } from '../support/redis-servers.js';
import { startRedis } from '../support/servers.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | null) => (value === null ? null : Buffer.from(value).toString());

describe('RedisBackend (sentinel)', () => {
  let master: Awaited<ReturnType<typeof startRedis>>;
  let sentinel: SentinelHandle;
  beforeAll(async () => {
    master = await startRedis();
    sentinel = await startSentinel(master, 'mymaster');
  });
  afterAll(async () => {
    await sentinel?.stop();
    await master?.stop();
  });

  it('finds the master through the sentinel and reads, writes and publishes there', async () => {
    const backend = new RedisBackend({ sentinels: [{ host: sentinel.host, port: sentinel.port }], name: 'mymaster', keyPrefix: 'sentinel:' });
    try {
      await backend.set('k', bytes('via sentinel'), 60);
      expect(text(await backend.get('k'))).toBe('via sentinel');
      expect(await redisCli(master.port, 'get', 'sentinel:k')).toBe('via sentinel'); // it really is the master
      expect(await backend.getTtl('k')).toBeGreaterThan(50);
      expect((await backend.getMany(['k', 'missing'])).map(text)).toEqual(['via sentinel', null]);
      expect(await backend.delete('k')).toBe(true);

      const got: string[] = [];
      const sub = await backend.subscribe(
        'news',
        (m) => got.push(m),
        () => {},
      );
      await backend.publish('news', 'hello');
      const deadline = Date.now() + 3_000;
      while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(got).toEqual(['hello']);
      await sub.unsubscribe();

      const [healthy, details] = await backend.healthCheck();
      expect(healthy).toBe(true);
      expect(details).toMatchObject({ backend_type: 'redis', mode: 'sentinel' });
    } finally {
      await backend.close();
    }
  });

  it('fails fast, classified, when the master name is unknown to the sentinels', async () => {
    const backend = new RedisBackend({
      sentinels: [`${sentinel.host}:${sentinel.port}`],
      name: 'no-such-master',
      connectTimeoutMs: 1_000,
      commandTimeoutMs: 500,
    });
    try {
      const started = Date.now();
      const error = await backend.get('k').then(
        () => new Error('resolved'),
        (e: unknown) => e as { kind?: string },
      );
      expect(['transient', 'timeout']).toContain((error as { kind?: string }).kind);
      expect(Date.now() - started).toBeLessThan(2_500);
      expect((await backend.healthCheck())[0]).toBe(false);
    } finally {
      await backend.close();
    }
  });
});
