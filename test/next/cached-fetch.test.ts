import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { cachedFetch } from '../../src/loaders/cached-fetch.js';
import { getStack, resetStacks } from '../../src/stack/stack.js';

describe('cachedFetch', () => {
  let server: Server;
  let base: string;
  const hits = new Map<string, number>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      const count = (hits.get(req.url!) ?? 0) + 1;
      hits.set(req.url!, count);
      if (req.url === '/missing') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`missing ${count}`);
        return;
      }
      res.writeHead(201, 'Made', { 'content-type': 'application/octet-stream', 'x-count': String(count), 'x-path': req.url! });
      res.end(Buffer.from([0, 255, 1, 254, count]));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await resetStacks();
    await new Promise((resolve) => server.close(resolve));
  });

  it('caches status, headers and body bytes; returns a fresh Response each time', async () => {
    const backend = new MemoryBackend();
    const first = await cachedFetch(`${base}/a`, { backend, ttl: 60 });
    const second = await cachedFetch(`${base}/a`, { backend, ttl: 60 });
    expect(first).not.toBe(second);
    for (const response of [first, second]) {
      expect(response.status).toBe(201);
      expect(response.statusText).toBe('Made');
      expect(response.headers.get('x-count')).toBe('1');
      expect(response.headers.get('content-type')).toBe('application/octet-stream');
      expect([...new Uint8Array(await response.arrayBuffer())]).toEqual([0, 255, 1, 254, 1]);
    }
    expect(hits.get('/a')).toBe(1);
    // The body of a cached response can be read again from a new call.
    expect((await (await cachedFetch(`${base}/a`, { backend, ttl: 60 })).arrayBuffer()).byteLength).toBe(5);
    expect(hits.get('/a')).toBe(1);
  });

  it('single-flight for concurrent requests; different request headers are different entries', async () => {
    const backend = new MemoryBackend();
    const responses = await Promise.all(Array.from({ length: 20 }, () => cachedFetch(`${base}/b`, { backend })));
    expect(responses.every((r) => r.headers.get('x-count') === '1')).toBe(true);
    expect(hits.get('/b')).toBe(1);
    await cachedFetch(`${base}/b`, { backend, headers: { accept: 'text/plain' } });
    expect(hits.get('/b')).toBe(2);
  });

  it('does not cache error responses or non-GET requests', async () => {
    const backend = new MemoryBackend();
    expect(await (await cachedFetch(`${base}/missing`, { backend })).text()).toBe('missing 1');
    expect(await (await cachedFetch(`${base}/missing`, { backend })).text()).toBe('missing 2');
    await cachedFetch(`${base}/post`, { backend, method: 'POST', body: 'x' });
    await cachedFetch(`${base}/post`, { backend, method: 'POST', body: 'x' });
    expect(hits.get('/post')).toBe(2);
  });

  it('tags: revalidateTags drops cached responses', async () => {
    const backend = new MemoryBackend();
    const stack = getStack({ backend, namespace: 'fetch-tags' });
    const a = await cachedFetch(`${base}/t`, { backend, stack, tags: ['feed'] });
    expect(a.headers.get('x-count')).toBe('1');
    expect((await cachedFetch(`${base}/t`, { backend, stack, tags: ['feed'] })).headers.get('x-count')).toBe('1');
    await new Promise((resolve) => setTimeout(resolve, 5));
    await stack.revalidateTags(['feed']);
    expect((await cachedFetch(`${base}/t`, { backend, stack, tags: ['feed'] })).headers.get('x-count')).toBe('2');
  });
});
