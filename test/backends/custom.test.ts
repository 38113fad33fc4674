import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getDefaultBackend, setDefaultBackend } from '../../src/index.js';
import { resolveBackend, TieredCache } from '../../src/protocol.js';
import { refusedAddress, startBlackhole } from '../support/servers.js';
import { httpBackend, startHttpKv } from '../support/http-kv.js';
import { testBackendConformance } from '../../src/testing.js';

let kv: Awaited<ReturnType<typeof startHttpKv>>;
beforeAll(async () => {
  kv = await startHttpKv();
});
afterAll(async () => {
  await kv.stop();
});

testBackendConformance(
  {
    name: 'custom HTTP backend (a plain object)',
    capabilities: [],
    backendType: 'http',
    create: () => httpBackend(kv.url, 10_000),
    unreachable: {
      refused: async () => {
        const { address } = await refusedAddress();
        return { backend: httpBackend(`http://${address}`, 500), boundMs: 500 };
      },
      blackhole: async () => {
        const hole = await startBlackhole();
        return { backend: httpBackend(`http://${hole.address}`, 500), boundMs: 500, cleanup: () => hole.stop() };
      },
    },
  },
  { describe, it, beforeAll, afterAll },
);

describe('a custom backend works everywhere a built-in one does', () => {
  it('behind the tiered cache', async () => {
    const cache = new TieredCache({ backend: httpBackend(kv.url) });
    await cache.set('custom:k', new TextEncoder().encode('v'), 60);
    const other = new TieredCache({ backend: httpBackend(kv.url) });
    expect(await other.lookup('custom:k')).toMatchObject({ source: 'l2' });
  });

  it('as the module default, and as an explicit backend', () => {
    const backend = httpBackend(kv.url);
    try {
      setDefaultBackend(backend);
      expect(getDefaultBackend()).toBe(backend);
      expect(resolveBackend()).toBe(backend);
      const explicit = httpBackend(kv.url);
      expect(resolveBackend(explicit)).toBe(explicit);
    } finally {
      setDefaultBackend(null);
    }
    expect(getDefaultBackend()).toBeUndefined();
  });

  it('refuses an object that is not a backend, naming the option', () => {
    expect(() => setDefaultBackend({ get() {} } as never)).toThrow(/backend/);
  });
});
