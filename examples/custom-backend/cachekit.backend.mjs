// The app's cache backend: a plain object with the five protocol methods over the HTTP key-value service of
// kv-server.mjs. withCachekit has every `next build` worker and `next start` process import this module once.
import { BackendError } from 'cachekit-next';

const KV_URL = process.env.KV_URL ?? 'http://127.0.0.1:4100';
const TIMEOUT_MS = 1000; // every call ends within this, body included: a slow store becomes a miss, not a slow page
const BACKEND = 'http-kv';

/** One call on `key`: `{ status, body }` for 2xx and 404, a BackendError (with the kind cachekit acts on) for the rest. */
async function call(operation, key, init = {}) {
  try {
    const res = await fetch(`${KV_URL}/kv/${encodeURIComponent(key)}`, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
    const body = new Uint8Array(await res.arrayBuffer());
    if (res.ok || res.status === 404) return { status: res.status, body };
    const kind =
      res.status === 401 || res.status === 403 ? 'authentication'
      : res.status === 429 || res.status >= 500 ? 'transient'
      : 'permanent';
    throw new BackendError(`${operation}: HTTP ${res.status}`, { kind, backend: BACKEND, operation, key });
  } catch (error) {
    if (error instanceof BackendError) throw error;
    // AbortSignal.timeout rejects with a TimeoutError; a refused or reset connection may work on a later call.
    const kind = error.name === 'TimeoutError' ? 'timeout' : 'transient';
    throw new BackendError(`${operation}: ${error.message}`, { kind, backend: BACKEND, operation, key, cause: error });
  }
}

/** @type {import('cachekit-next').Backend} */
const backend = {
  async get(key) {
    const { status, body } = await call('get', key);
    return status === 404 ? null : body;
  },
  async set(key, value, ttlSeconds) {
    await call('set', key, { method: 'PUT', body: value, headers: ttlSeconds ? { 'x-ttl': String(ttlSeconds) } : {} });
  },
  async delete(key) {
    return (await call('delete', key, { method: 'DELETE' })).status === 200;
  },
  async exists(key) {
    return (await call('exists', key, { method: 'HEAD' })).status === 200;
  },
  async healthCheck() {
    const started = performance.now();
    const ok = await fetch(`${KV_URL}/health`, { signal: AbortSignal.timeout(TIMEOUT_MS) }).then((res) => res.ok, () => false);
    return [ok, { latency_ms: performance.now() - started, backend_type: BACKEND }];
  },
};

export default backend;
