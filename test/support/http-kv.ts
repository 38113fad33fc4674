/**
 * A custom backend written the way the README shows it: a plain object over someone's HTTP key-value service, plus a
 * tiny such service for the tests. Nothing here extends or registers anything from cachekit.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BackendError, type Backend, type HealthDetails } from '../../src/index.js';

export function httpBackend(baseUrl: string, timeoutMs = 1_000): Backend {
  const call = async (method: string, key: string, body?: Uint8Array, ttlSeconds?: number) => {
    try {
      const response = await fetch(`${baseUrl}/kv/${encodeURIComponent(key)}`, {
        method,
        body,
        headers: ttlSeconds ? { 'x-ttl': String(ttlSeconds) } : {},
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (response.status >= 500) throw new BackendError(`HTTP ${response.status}`, { kind: 'transient', backend: 'http' });
      return response;
    } catch (error) {
      if (error instanceof BackendError) throw error;
      const kind = (error as Error).name === 'TimeoutError' ? 'timeout' : 'transient';
      throw new BackendError(`${method} failed: ${(error as Error).message}`, { kind, backend: 'http', cause: error });
    }
  };
  return {
    async get(key) {
      const response = await call('GET', key);
      return response.status === 404 ? null : new Uint8Array(await response.arrayBuffer());
    },
    async set(key, value, ttlSeconds) {
      await call('PUT', key, value, ttlSeconds);
    },
    async delete(key) {
      return (await call('DELETE', key)).status === 200;
    },
    async exists(key) {
      return (await call('HEAD', key)).status === 200;
    },
    async healthCheck(): Promise<[boolean, HealthDetails]> {
      const started = performance.now();
      try {
        const ok = (await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(timeoutMs) })).ok;
        return [ok, { latency_ms: performance.now() - started, backend_type: 'http' }];
      } catch (error) {
        return [false, { latency_ms: performance.now() - started, backend_type: 'http', error: String(error) }];
      }
    },
  };
}

/** An in-memory HTTP key-value service with TTLs. */
export async function startHttpKv(): Promise<{ url: string; stop(): Promise<void> }> {
  const store = new Map<string, { value: Buffer; expiresAt: number }>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/health') return res.end('ok');
    const key = decodeURIComponent(url.pathname.slice('/kv/'.length));
    const live = store.get(key);
    if (live && live.expiresAt <= Date.now()) store.delete(key);
    const entry = store.get(key);
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const ttl = Number(req.headers['x-ttl'] ?? 0);
        store.set(key, { value: Buffer.concat(chunks), expiresAt: ttl > 0 ? Date.now() + ttl * 1000 : Infinity });
        res.end();
      });
      return;
    }
    if (!entry) {
      res.statusCode = 404;
      return res.end();
    }
    if (req.method === 'DELETE') store.delete(key);
    if (req.method === 'GET') return res.end(entry.value);
    res.end();
  });
  // The conformance suite opens up to 1,000 connections at once: a backlog that holds them all, and idle keep-alive
  // sockets kept longer than the client keeps them (undici: 4 s), so a request never races the server's close
  // (ECONNRESET on a loaded machine).
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
