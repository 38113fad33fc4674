import { createHash } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CachekitIOBackend, HASHED_KEY_PREFIX, MAX_TTL_SECONDS, serverKeyFor, type CachekitIOBackendOptions } from '../../src/backends/cachekitio.js';
import { ConfigError } from '../../src/shared/options.js';
import { FakeCachekitIO } from '../support/fake-cachekitio.js';
import { refusedAddress, startBlackhole } from '../support/servers.js';
import { testBackendConformance } from '../../src/testing.js';
import { rejection, configError } from '../support/errors.js';

const API_KEY = 'ck_live_test';
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (value: Uint8Array | null) => (value === null ? null : Buffer.from(value).toString('utf8'));
const sha256 = (input: string) => createHash('sha256').update(input, 'utf8').digest('hex');
const NO_ENV = {};
/** The bound used for unreachable servers: small, so the suite stays fast. */
const DOWN_TIMEOUT_MS = 500;

let fake: FakeCachekitIO;
const open: CachekitIOBackend[] = [];

function backendFor(url: string, options: CachekitIOBackendOptions = {}): CachekitIOBackend {
  const backend = new CachekitIOBackend({ apiKey: API_KEY, apiUrl: url, allowCustomHost: true, timeoutMs: 5_000, ...options }, NO_ENV);
  open.push(backend);
  return backend;
}

/** A raw request to the fake, as another client (e.g. the Python SDK) would send it. */
async function raw(method: string, path: string, headers: Record<string, string> = {}, body?: string | Uint8Array) {
  const res = await request(`${fake.url}${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${API_KEY}`, ...headers },
    body,
  });
  const payload = method === 'HEAD' ? '' : await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: payload };
}

beforeAll(async () => {
  fake = await FakeCachekitIO.start();
});

afterAll(async () => {
  await Promise.all(open.map((b) => b.close()));
  await fake.stop();
});

testBackendConformance(
  {
    name: 'CachekitIOBackend',
    capabilities: ['ttl', 'locks'],
    backendType: 'cachekitio',
    create: () => backendFor(fake.url),
    optOut: {
      deleteReportsMissing: 'the current CachekitIO server answers DELETE with 200 whether or not the key existed',
    },
    unreachable: {
      stopped: async () => {
        const doomed = await FakeCachekitIO.start();
        const backend = backendFor(doomed.url, { timeoutMs: DOWN_TIMEOUT_MS });
        await backend.set('k', bytes('v'));
        await doomed.stop();
        return { backend, boundMs: DOWN_TIMEOUT_MS };
      },
      refused: async () => {
        const { address } = await refusedAddress();
        return { backend: backendFor(`http://${address}`, { timeoutMs: DOWN_TIMEOUT_MS }), boundMs: DOWN_TIMEOUT_MS };
      },
      blackhole: async () => {
        const hole = await startBlackhole();
        return {
          backend: backendFor(`http://${hole.address}`, { timeoutMs: DOWN_TIMEOUT_MS }),
          boundMs: DOWN_TIMEOUT_MS,
          cleanup: () => hole.stop(),
        };
      },
    },
  },
  { describe, it, beforeAll, afterAll },
);

describe('CachekitIOBackend: HTTP API specifics', () => {
  let backend: CachekitIOBackend;

  beforeAll(() => {
    backend = backendFor(fake.url);
  });

  beforeEach(() => {
    fake.reset();
  });

  describe('headers', () => {
    it('sends auth, L1 status, user agent and the TTL on every request', async () => {
      await backend.set('hdr:a', bytes('v'), 60);
      await backend.get('hdr:a');
      await backend.exists('hdr:a');
      await backend.delete('hdr:a');
      expect(fake.requests.map((r) => r.method)).toEqual(['PUT', 'GET', 'HEAD', 'DELETE']);
      for (const r of fake.requests) {
        expect(r.headers.authorization).toBe(`Bearer ${API_KEY}`);
        expect(r.headers['x-cachekit-l1-status']).toBe('miss');
        expect(r.headers['user-agent']).toMatch(/^cachekit-next /);
      }
      const put = fake.requests[0]!;
      expect(put.headers['x-cachekit-ttl']).toBe('60');
      expect(put.headers['content-type']).toBe('application/octet-stream');
      expect(put.headers['x-ttl']).toBeUndefined();
      expect(put.headers['x-cachekit-stale-ttl']).toBeUndefined();
    });

    it('reports the configured L1 status', async () => {
      const noL1 = backendFor(fake.url, { l1Status: 'disabled' });
      await noL1.get('hdr:l1');
      expect(fake.requests[0]!.headers['x-cachekit-l1-status']).toBe('disabled');
      expect(() => backendFor(fake.url, { l1Status: 'maybe' as 'hit' })).toThrow(ConfigError);
    });

    it('works with ck_sdk_ keys, which the server refuses without X-CacheKit-L1-Status', async () => {
      const sdkFake = await FakeCachekitIO.start({ apiKeys: ['ck_sdk_abc'] });
      try {
        const sdk = new CachekitIOBackend({ apiKey: 'ck_sdk_abc', apiUrl: sdkFake.url, allowCustomHost: true }, NO_ENV);
        open.push(sdk);
        await sdk.set('ns:app:k', bytes('sdk'), 30);
        expect(text(await sdk.get('ns:app:k'))).toBe('sdk');
        const bare = await request(`${sdkFake.url}/v1/cache/ns%3Aapp%3Ak`, { headers: { authorization: 'Bearer ck_sdk_abc' } });
        await bare.body.dump();
        expect(bare.statusCode).toBe(400);
      } finally {
        await sdkFake.stop();
      }
    });

    it('receives Cache-Control: no-store on every response', async () => {
      for (const r of [await raw('GET', '/v1/cache/nope'), await raw('GET', '/v1/cache/health'), await raw('PUT', '/v1/cache/x', {}, 'v')]) {
        expect(r.headers['cache-control']).toBe('no-store');
      }
    });
  });

  describe('TTL', () => {
    const cases: [number | undefined, string | undefined][] = [
      [undefined, undefined],
      [0, undefined],
      [0.2, '1'],
      [1.5, '2'],
      [59.0001, '60'],
      [MAX_TTL_SECONDS, String(MAX_TTL_SECONDS)],
      [MAX_TTL_SECONDS + 1, String(MAX_TTL_SECONDS)],
      [1e12, String(MAX_TTL_SECONDS)],
      [Infinity, String(MAX_TTL_SECONDS)],
    ];

    it('maps every TTL to a header the server accepts (absent, ceiled, clamped to 30 days)', async () => {
      for (const [ttl, expected] of cases) {
        await backend.set('ttl:map', bytes('v'), ttl);
        const put = fake.requests.at(-1)!;
        expect(put.status, `ttl ${ttl}`).toBe(200);
        expect(put.headers['x-cachekit-ttl'], `ttl ${ttl}`).toBe(expected);
      }
      expect(fake.requests.every((r) => r.status === 200)).toBe(true);
    });

    it('refuses negative and NaN TTLs client-side, without a request', async () => {
      for (const ttl of [-1, NaN]) {
        expect((await rejection(backend.set('ttl:bad', bytes('v'), ttl))).kind).toBe('permanent');
      }
      expect((await rejection(backend.refreshTtl('ttl:bad', 0))).kind).toBe('permanent');
      expect(fake.requests).toHaveLength(0);
    });

    it('the fake answers 400 for the TTL headers our client never sends', async () => {
      for (const value of ['0', '-1', '1.5', '2592001', 'abc', '']) {
        expect((await raw('PUT', '/v1/cache/ttl:raw', { 'x-cachekit-ttl': value }, 'v')).status, value).toBe(400);
      }
      expect((await raw('PUT', '/v1/cache/ttl:raw', { 'x-cachekit-stale-ttl': '5' }, 'v')).status).toBe(400);
      expect((await raw('PUT', '/v1/cache/ttl:raw', { 'x-cachekit-ttl': '2592000', 'x-cachekit-stale-ttl': '1' }, 'v')).status).toBe(400);
      expect((await raw('PUT', '/v1/cache/ttl:raw', { 'x-cachekit-ttl': '2592000' }, 'v')).status).toBe(200);
    });

    it('reads the remaining TTL, and reports no-expiry entries as null', async () => {
      await backend.set('ttl:some', bytes('v'), 100);
      await backend.set('ttl:none', bytes('v'));
      expect([99_000, 100_000]).toContain((await backend.getWithTtl('ttl:some'))!.ttlMs); // Fresh-For rounds down
      expect(await backend.getTtl('ttl:some')).toBe(100); // /ttl rounds up
      expect(await backend.getWithTtl('ttl:none')).toMatchObject({ ttlMs: null });
      expect(await backend.getWithFreshness('ttl:none')).toMatchObject({ fresh: true, freshForSeconds: null });
      expect(await backend.getTtl('ttl:none')).toBeNull();
      fake.advance(101_000);
      expect(await backend.getWithTtl('ttl:some')).toBeNull();
      expect(text(await backend.get('ttl:none'))).toBe('v');
    });
  });

  describe('keys', () => {
    it('passes keys the server accepts unchanged, so other SDKs share the entry', async () => {
      const keys = ['user:42.profile_v-1', 'ns:app:func:mod.fn:args:ab:1s', 'k'.repeat(400), 'a:.', '.a', '-'];
      for (const key of keys) {
        expect(serverKeyFor(key)).toBe(key);
        await backend.set(key, bytes(`plain ${key.length}`));
        expect(fake.store.has(key), key).toBe(true);
      }
      expect(fake.requests[0]!.url).toBe('/v1/cache/user%3A42.profile_v-1');
      // Written by another client (the Python SDK sends the same bytes), read by ours.
      expect((await raw('PUT', `/v1/cache/${encodeURIComponent('interop:op:abc')}`, { 'x-cachekit-ttl': '60' }, 'from python')).status).toBe(200);
      expect(text(await backend.get('interop:op:abc'))).toBe('from python');
    });

    it('hashes keys the server would refuse, deterministically and distinctly', async () => {
      const keys = [
        'a/b',
        'with space',
        'ключ/🔑/键',
        'x'.repeat(401),
        'y'.repeat(500),
        'a..b',
        'ns:bad.ns:x',
        'ns:',
        'percent%2Fslash',
        'tab\tand\nnewline',
        '\u0000nul',
        '?query#frag',
      ];
      for (const [i, key] of keys.entries()) await backend.set(key, bytes(`hashed ${i}`));
      for (const [i, key] of keys.entries()) {
        expect(text(await backend.get(key)), key).toBe(`hashed ${i}`);
        const stored = HASHED_KEY_PREFIX + sha256(key);
        expect(serverKeyFor(key)).toBe(stored);
        expect(fake.store.has(stored), key).toBe(true);
      }
      const mapped = keys.map(serverKeyFor);
      expect(new Set(mapped).size).toBe(keys.length);
      // Every request was a single, valid path segment: the fake refused none.
      expect(fake.requests.every((r) => r.status === 200)).toBe(true);
    });

    it('never lets a hashed key collide with a plain key that looks like one', async () => {
      await backend.set('a/b', bytes('slash'));
      const lookalike = serverKeyFor('a/b');
      await backend.set(lookalike, bytes('lookalike'));
      expect(serverKeyFor(lookalike)).not.toBe(lookalike);
      expect(text(await backend.get('a/b'))).toBe('slash');
      expect(text(await backend.get(lookalike))).toBe('lookalike');
    });

    it('keeps lone surrogates distinct (UTF-8 would merge them)', () => {
      expect(serverKeyFor('\uD800')).not.toBe(serverKeyFor('\uDFFF'));
      expect(serverKeyFor('\uD800')).not.toBe(serverKeyFor('\uFFFD'));
    });

    it('rejects the reserved keys with a permanent error before any request', async () => {
      for (const key of ['', '.', '..', 'health', 'ttl', 'lock']) {
        for (const op of [
          () => backend.get(key),
          () => backend.set(key, bytes('v')),
          () => backend.delete(key),
          () => backend.exists(key),
          () => backend.getTtl(key),
          () => backend.refreshTtl(key, 5),
          () => backend.acquireLock(key, 100),
          () => backend.releaseLock(key, 'id'),
        ]) {
          const error = await rejection(op());
          expect(error.kind).toBe('permanent');
          expect(error.message).toContain('reserved');
        }
      }
      expect(fake.requests).toHaveLength(0);
    });
  });

  describe('configuration', () => {
    const make = (options: CachekitIOBackendOptions, env: NodeJS.ProcessEnv = NO_ENV) => new CachekitIOBackend({ apiKey: API_KEY, ...options }, env);

    it('accepts the official hosts over HTTPS only', () => {
      expect(make({}).apiUrl).toBe('https://api.cachekit.io');
      expect(make({ apiUrl: 'https://api.staging.cachekit.io/' }).apiUrl).toBe('https://api.staging.cachekit.io');
      for (const apiUrl of [
        'http://api.cachekit.io',
        'https://evil.example.com',
        'https://api.cachekit.io.evil.com',
        'https://evilcachekit.io',
        'https://docs.cachekit.io',
        'http://127.0.0.1:8080',
        'not a url',
        'ftp://api.cachekit.io',
        'https://user:secret@api.cachekit.io',
        'https://api.cachekit.io/?region=eu',
      ]) {
        expect(configError(() => make({ apiUrl })).option, apiUrl).toBe('apiUrl');
      }
    });

    it('allows custom hosts, and plain http to them, only with allowCustomHost', () => {
      expect(make({ apiUrl: 'https://cache.internal.example', allowCustomHost: true }).apiUrl).toBe('https://cache.internal.example');
      expect(make({ apiUrl: 'http://127.0.0.1:8080/base/', allowCustomHost: true }).apiUrl).toBe('http://127.0.0.1:8080/base');
      expect(configError(() => make({ apiUrl: 'http://api.cachekit.io', allowCustomHost: true })).option).toBe('apiUrl');
      expect(make({ apiUrl: 'http://127.0.0.1:8080' }, { CACHEKIT_ALLOW_CUSTOM_HOST: 'true' }).apiUrl).toBe('http://127.0.0.1:8080');
      const fromEnv = configError(() => make({}, { CACHEKIT_API_URL: 'http://127.0.0.1:8080' }));
      expect(fromEnv.option).toBe('apiUrl');
      expect(fromEnv.message).toContain('CACHEKIT_API_URL');
    });

    it('requires an API key and never echoes it', () => {
      const missing = configError(() => new CachekitIOBackend({}, NO_ENV));
      expect(missing.option).toBe('apiKey');
      expect(missing.message).toContain('CACHEKIT_API_KEY');
      const bad = configError(() => new CachekitIOBackend({ apiKey: 'ck_live_secret\r\nX-Evil: 1' }, NO_ENV));
      expect(bad.option).toBe('apiKey');
      expect(bad.message).not.toContain('secret');
    });

    it('builds from the environment, explicit options first', async () => {
      const env = {
        CACHEKIT_API_KEY: API_KEY,
        CACHEKIT_API_URL: fake.url,
        CACHEKIT_ALLOW_CUSTOM_HOST: 'true',
        CACHEKIT_TIMEOUT: '0.75',
        CACHEKIT_MAX_RETRIES: '1',
        CACHEKIT_CONNECTION_POOL_SIZE: '2',
      };
      const fromEnv = CachekitIOBackend.fromEnv(env);
      open.push(fromEnv);
      expect([fromEnv.timeoutMs, fromEnv.maxRetries, fromEnv.connections, fromEnv.apiUrl]).toEqual([750, 1, 2, fake.url]);
      await fromEnv.set('env:k', bytes('env'), 10);
      expect(text(await fromEnv.get('env:k'))).toBe('env');
      expect(new CachekitIOBackend({ timeoutMs: 100, maxRetries: 0 }, env)).toMatchObject({ timeoutMs: 100, maxRetries: 0 });
      expect(CachekitIOBackend.fromEnv({ CACHEKIT_API_KEY: API_KEY }).timeoutMs).toBe(5_000);
      expect(configError(() => CachekitIOBackend.fromEnv({ ...env, CACHEKIT_TIMEOUT: 'soon' })).option).toBe('CACHEKIT_TIMEOUT');
      expect(configError(() => CachekitIOBackend.fromEnv({ ...env, CACHEKIT_TIMEOUT: '0' })).option).toBe('CACHEKIT_TIMEOUT');
      expect(configError(() => CachekitIOBackend.fromEnv({ ...env, CACHEKIT_ALLOW_CUSTOM_HOST: 'maybe' })).option).toBe('CACHEKIT_ALLOW_CUSTOM_HOST');
    });

    it('rejects unknown and invalid options by name', () => {
      expect(configError(() => make({ timeout: 5 } as CachekitIOBackendOptions)).option).toBe('timeout');
      expect(configError(() => make({ timeoutMs: 0 })).option).toBe('timeoutMs');
      expect(configError(() => make({ maxRetries: -1 })).option).toBe('maxRetries');
      expect(configError(() => make({ connections: 0 })).option).toBe('connections');
      expect(configError(() => make({ staleTtlSeconds: -1 })).option).toBe('staleTtlSeconds');
    });
  });

  describe('errors and retries', () => {
    it('maps 401 and 403 to authentication, without retrying', async () => {
      const wrong = new CachekitIOBackend({ apiKey: 'ck_live_wrong', apiUrl: fake.url, allowCustomHost: true }, NO_ENV);
      open.push(wrong);
      const error = await rejection(wrong.get('auth:k'));
      expect(error.kind).toBe('authentication');
      expect(error.message).toMatch(/GET \/v1\/cache\/auth%3Ak .*401/);
      expect(fake.requests).toHaveLength(1);

      const revokedFake = await FakeCachekitIO.start({ apiKeys: [API_KEY], revokedKeys: ['ck_live_revoked'] });
      try {
        const revoked = new CachekitIOBackend({ apiKey: 'ck_live_revoked', apiUrl: revokedFake.url, allowCustomHost: true }, NO_ENV);
        open.push(revoked);
        expect((await rejection(revoked.set('auth:k', bytes('v')))).kind).toBe('authentication');
        expect(revokedFake.requests).toHaveLength(1);
        const [healthy, details] = await revoked.healthCheck();
        expect(healthy).toBe(false);
        expect(details.error_kind).toBe('authentication');
      } finally {
        await revokedFake.stop();
      }
    });

    it('maps 413 to permanent, without retrying', async () => {
      const error = await rejection(backend.set('big:k', new Uint8Array(25 * 1024 * 1024 + 1)));
      expect(error.kind).toBe('permanent');
      expect(error.message).toMatch(/PUT \/v1\/cache\/big%3Ak .*413/);
      expect(fake.requests).toHaveLength(1);
      expect(fake.store.has('big:k')).toBe(false);

      const small = await FakeCachekitIO.start({ maxValueBytes: 1024 });
      try {
        const client = backendFor(small.url);
        await client.set('edge', new Uint8Array(1024));
        expect((await rejection(client.set('edge', new Uint8Array(1025)))).kind).toBe('permanent');
        expect(small.requests.map((r) => r.status)).toEqual([200, 413]);
      } finally {
        await small.stop();
      }
    });

    it('never retries other 4xx', async () => {
      for (const status of [400, 404, 405, 422]) {
        fake.reset();
        fake.failNext(1, status);
        expect((await rejection(backend.set('4xx:k', bytes('v')))).kind, String(status)).toBe('permanent');
        expect(fake.requests).toHaveLength(1);
      }
    });

    it('retries 503 and succeeds when the server recovers', async () => {
      fake.failNext(2, 503);
      await backend.set('retry:k', bytes('after retries'), 30);
      expect(fake.requests.map((r) => r.status)).toEqual([503, 503, 200]);
      expect(text(await backend.get('retry:k'))).toBe('after retries');
    });

    it('retries 500, 502 and dropped connections the same way', async () => {
      fake.failNext(1, 500);
      fake.failNext(1, 'reset');
      fake.failNext(1, 502);
      expect(await backend.get('retry:missing')).toBeNull();
      expect(fake.requests.map((r) => r.status)).toEqual([500, 0, 502, 404]);
    });

    it('gives up on 503 forever with a transient error within the deadline', async () => {
      const bounded = backendFor(fake.url, { timeoutMs: 800 });
      fake.failNext(1_000, 503);
      const started = Date.now();
      const error = await rejection(bounded.get('retry:forever'));
      expect(error.kind).toBe('transient');
      expect(error.message).toMatch(/GET \/v1\/cache\/retry%3Aforever .*503/);
      expect(Date.now() - started).toBeLessThan(800 + 500);
      expect(fake.requests.length).toBeGreaterThanOrEqual(2);
      expect(fake.requests.length).toBeLessThanOrEqual(bounded.maxRetries + 1);

      fake.reset();
      fake.failNext(1_000, 503);
      const once = backendFor(fake.url, { maxRetries: 0 });
      expect((await rejection(once.get('retry:forever'))).kind).toBe('transient');
      expect(fake.requests).toHaveLength(1);
    });

    it('honours Retry-After on 429', async () => {
      fake.failNext(1, 429, { retryAfter: '1' });
      expect(await backend.exists('retry:429')).toBe(false);
      expect(fake.requests.map((r) => r.status)).toEqual([429, 404]);
      // Node timers may fire up to a millisecond early; the wait itself is a full second.
      expect(fake.requests[1]!.at - fake.requests[0]!.at).toBeGreaterThanOrEqual(990);
    });

    it('fails fast when Retry-After is beyond the deadline', async () => {
      const bounded = backendFor(fake.url, { timeoutMs: 1_000 });
      fake.failNext(1, 429, { retryAfter: '30' });
      const started = Date.now();
      const error = await rejection(bounded.get('retry:later'));
      expect(error.kind).toBe('transient');
      expect(error.message).toContain('retry after 30000 ms');
      expect(Date.now() - started).toBeLessThan(500);
      expect(fake.requests).toHaveLength(1);
    });

    it('times out a slow server, then recovers on a new connection', async () => {
      const quick = backendFor(fake.url, { timeoutMs: 300 });
      fake.delay(2_000);
      const started = Date.now();
      const error = await rejection(quick.get('slow:k'));
      expect(error.kind).toBe('timeout');
      expect(error.message).toContain('GET /v1/cache/slow%3Ak');
      expect(Date.now() - started).toBeLessThan(300 + 1_000);
      const [healthy, details] = await quick.healthCheck();
      expect(healthy).toBe(false);
      expect(details).toMatchObject({ backend_type: 'cachekitio', status: 'error', error_kind: 'timeout' });
      fake.delay(0);
      expect(await quick.get('slow:k')).toBeNull();
    });

    it('classifies a malformed success body as unknown, without retrying', async () => {
      fake.failNext(1, 200, { body: 'not json' });
      expect((await rejection(backend.acquireLock('lock:malformed', 1_000))).kind).toBe('unknown');
      expect(fake.requests).toHaveLength(1);
    });
  });

  describe('stale-while-revalidate', () => {
    it('returns stale bytes inside the stale window, then evicts', async () => {
      const swr = backendFor(fake.url, { staleTtlSeconds: 30 });
      await swr.set('swr:k', bytes('old'), 10);
      expect(fake.requests[0]!.headers).toMatchObject({ 'x-cachekit-ttl': '10', 'x-cachekit-stale-ttl': '30' });
      const fresh = await swr.getWithFreshness('swr:k');
      expect(fresh!.fresh).toBe(true);
      expect([9, 10]).toContain(fresh!.freshForSeconds); // whole seconds, rounded down

      fake.advance(11_000);
      const stale = await swr.getWithFreshness('swr:k');
      expect(stale).toMatchObject({ fresh: false, freshForSeconds: 0 });
      expect(text(stale!.value)).toBe('old');
      expect(text(await swr.get('swr:k'))).toBe('old');
      expect(await swr.getWithTtl('swr:k')).toMatchObject({ ttlMs: 0 });
      expect(await swr.exists('swr:k')).toBe(true);
      expect(await swr.getTtl('swr:k')).toBe(29); // until eviction, rounded up
      expect(await swr.refreshTtl('swr:k', 60)).toBe(false); // 409: only a PUT makes it fresh again
      expect(fake.requests.at(-1)!.status).toBe(409);

      fake.advance(30_000);
      expect(await swr.getWithFreshness('swr:k')).toBeNull();
      expect(await swr.exists('swr:k')).toBe(false);
      expect(await swr.getTtl('swr:k')).toBeUndefined();
    });

    it('keeps TTL plus stale window within 30 days and sends none without a TTL', async () => {
      const swr = backendFor(fake.url, { staleTtlSeconds: 100 });
      await swr.set('swr:max', bytes('v'), MAX_TTL_SECONDS);
      await swr.set('swr:near', bytes('v'), MAX_TTL_SECONDS - 50);
      await swr.set('swr:none', bytes('v'));
      expect(fake.requests.map((r) => r.headers['x-cachekit-stale-ttl'])).toEqual([undefined, '50', undefined]);
      expect(fake.requests.every((r) => r.status === 200)).toBe(true);
    });

    it('refreshes the TTL of a fresh entry', async () => {
      await backend.set('swr:refresh', bytes('v'), 5);
      expect(await backend.refreshTtl('swr:refresh', 1000.5)).toBe(true);
      expect(await backend.getTtl('swr:refresh')).toBe(1001);
      const patch = fake.requests.find((r) => r.method === 'PATCH')!;
      expect(patch.headers['content-type']).toBe('application/json');
      expect(await backend.refreshTtl('swr:absent', 5)).toBe(false);
    });
  });

  describe('locks', () => {
    it('acquires and releases through the lock endpoints', async () => {
      const token = await backend.acquireLock('lock:k', 1_500.2);
      expect(token).toEqual(expect.any(String));
      const post = fake.requests[0]!;
      expect([post.method, post.url, post.headers['content-type']]).toEqual(['POST', '/v1/cache/lock%3Ak/lock', 'application/json']);
      expect(fake.locks.get('lock:k')!.expiresAt - fake.now()).toBeGreaterThan(1_000);
      expect(await backend.acquireLock('lock:k', 1_000)).toBeNull();
      expect(await backend.releaseLock('lock:k', token!)).toBe(true);
      const release = fake.requests.at(-1)!;
      expect([release.method, release.url, release.headers['x-cachekit-lock-id']]).toEqual(['DELETE', '/v1/cache/lock%3Ak/lock', token]);
      expect(await backend.releaseLock('lock:k', token!)).toBe(false);
      expect(await backend.releaseLock('lock:k', '')).toBe(false);
    });

    it('locks hashed keys and treats a legacy 409 as contested', async () => {
      expect(await backend.acquireLock('lock with space', 1_000)).not.toBeNull();
      expect(fake.locks.has(serverKeyFor('lock with space'))).toBe(true);
      const legacy = await FakeCachekitIO.start({ legacyLock409: true });
      try {
        const client = backendFor(legacy.url);
        expect(await client.acquireLock('k', 1_000)).not.toBeNull();
        expect(await client.acquireLock('k', 1_000)).toBeNull();
        expect(legacy.requests.map((r) => r.status)).toEqual([200, 409]);
      } finally {
        await legacy.stop();
      }
    });

    it('the lease expires on the server clock', async () => {
      expect(await backend.acquireLock('lock:lease', 1_000)).not.toBeNull();
      fake.advance(1_001);
      expect(await backend.acquireLock('lock:lease', 1_000)).not.toBeNull();
    });
  });

  describe('delete', () => {
    it('cannot see a missing key on current servers (idempotent 200), reports false on older ones (404)', async () => {
      expect(await backend.delete('del:never-set')).toBe(true);
      const legacy = await FakeCachekitIO.start({ legacyDelete404: true });
      try {
        const client = backendFor(legacy.url);
        await client.set('del:k', bytes('v'));
        expect(await client.delete('del:k')).toBe(true);
        expect(await client.delete('del:k')).toBe(false);
      } finally {
        await legacy.stop();
      }
    });
  });

  describe('connections', () => {
    it('reuses a few keep-alive connections for many requests', async () => {
      const pooled = backendFor(fake.url, { connections: 4 });
      for (let i = 0; i < 100; i++) await pooled.get(`pool:${i}`);
      await Promise.all(Array.from({ length: 400 }, (_, i) => pooled.set(`pool:${i}`, bytes('v'), 60)));
      expect(fake.requests).toHaveLength(500);
      expect(fake.connections).toBeGreaterThanOrEqual(1);
      expect(fake.connections).toBeLessThanOrEqual(4);
    });

    it('keeps a base path from apiUrl', async () => {
      const prefixed = backendFor(`${fake.url}/proxy/`);
      await prefixed.get('base:k');
      expect(fake.requests[0]!.url).toBe('/proxy/v1/cache/base%3Ak');
    });
  });

  describe('health and close', () => {
    it('reports health details', async () => {
      const [healthy, details] = await backend.healthCheck();
      expect(healthy).toBe(true);
      expect(details).toMatchObject({ backend_type: 'cachekitio', api_url: fake.url, status: 'ok' });
      expect(fake.requests[0]!.url).toBe('/v1/cache/health');
    });

    it('fails calls after close with a permanent error, and reports unhealthy', async () => {
      const closing = backendFor(fake.url);
      await closing.set('close:k', bytes('v'));
      await closing.close();
      expect((await rejection(closing.get('close:k'))).kind).toBe('permanent');
      const [healthy, details] = await closing.healthCheck();
      expect(healthy).toBe(false);
      expect(details.error).toEqual(expect.stringContaining('closed'));
      await closing.close(); // idempotent
    });
  });
});
