/**
 * CachekitIO: the managed cachekit service over HTTPS (cachekit-protocol.md section 3), on one undici Pool per backend.
 *
 * Every operation runs under one deadline (`timeoutMs`) that covers queueing for a connection, every attempt, every
 * backoff pause and reading the body; 429, 5xx and connection failures are retried inside it, nothing else is.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Pool, type Dispatcher } from 'undici';
import {
  ConfigError,
  assertKnownOptions,
  booleanOption,
  envBoolean,
  envNumber,
  numberOption,
  stringOption,
} from '../core/options.js';
import type { Backend, EntryWithTtl, HealthDetails, LockCapable, TtlCapable } from './types.js';
import { BackendError, type BackendErrorKind } from './types.js';

const COMPONENT = 'CachekitIOBackend';
const BACKEND = 'cachekitio';

/** What the L1 in front of this backend did for the request, reported in `X-CacheKit-L1-Status`. */
export type L1Status = 'hit' | 'miss' | 'disabled';

export interface CachekitIOBackendOptions {
  /** Bearer API key (`ck_live_...`, `ck_sdk_...`, `ck_api_...`). Required. @default CACHEKIT_API_KEY */
  apiKey?: string;
  /**
   * Base URL. Must be `https://` on an official host (`api.cachekit.io`, `api.staging.cachekit.io`) unless
   * `allowCustomHost`. A path prefix is kept (`https://proxy.example/cache` -> `/cache/v1/cache/...`).
   * @default CACHEKIT_API_URL or `https://api.cachekit.io`
   */
  apiUrl?: string;
  /**
   * Deadline of one whole operation in milliseconds: waiting for a connection, every retry and backoff pause, and
   * reading the body. A call never takes longer (plus timer slack).
   * @default CACHEKIT_TIMEOUT (seconds) * 1000, or 5000
   */
  timeoutMs?: number;
  /**
   * Allow any host, and plain `http://` to hosts other than the official ones (tests, self-hosted servers). The API
   * key is sent to that host, so only point it at servers you trust.
   * @default CACHEKIT_ALLOW_CUSTOM_HOST or false
   */
  allowCustomHost?: boolean;
  /** Retries after a transient failure (429, 5xx, connection error), all within `timeoutMs`. @default CACHEKIT_MAX_RETRIES or 3 */
  maxRetries?: number;
  /** Most keep-alive connections the pool opens; further requests queue. @default CACHEKIT_CONNECTION_POOL_SIZE or 10 */
  connections?: number;
  /**
   * Sent as `X-CacheKit-L1-Status` on every request (required by the server for `ck_sdk_` keys). This backend is
   * normally consulted after the in-process L1 missed, hence `miss`; use `disabled` when there is no L1 in front.
   * @default 'miss'
   */
  l1Status?: L1Status;
  /**
   * Stale-grace window in seconds sent as `X-CacheKit-Stale-TTL` on writes that have a TTL: after the TTL the entry is
   * still served, marked stale (see {@link CachekitIOBackend.getWithFreshness}), for this long. 0 = none. Shortened so
   * that TTL plus window stay within the server's 30-day cap.
   * @default 0
   */
  staleTtlSeconds?: number;
}

/** A value with the server's freshness verdict (stale-while-revalidate). */
export interface FreshnessEntry {
  value: Uint8Array;
  /** `false` inside the stale window: serve it, but recompute. */
  fresh: boolean;
  /** Whole seconds the value stays fresh (0 when stale); `null` when the entry never expires. */
  freshForSeconds: number | null;
}

const KNOWN_OPTIONS = [
  'apiKey',
  'apiUrl',
  'timeoutMs',
  'allowCustomHost',
  'maxRetries',
  'connections',
  'l1Status',
  'staleTtlSeconds',
] as const;

/** The hosts the official SDKs accept without `allowCustomHost`. Other cachekit.io subdomains may be served by third parties (docs, marketing), so a bearer token is never sent there by default. */
export const OFFICIAL_HOSTS: readonly string[] = ['api.cachekit.io', 'api.staging.cachekit.io'];
const DEFAULT_API_URL = 'https://api.cachekit.io';
/** The server's TTL cap (30 days); longer TTLs are clamped to it. */
export const MAX_TTL_SECONDS = 2_592_000;
/** Keys that are route tokens or dot segments in `/v1/cache/{key}`: they would address another route. */
const RESERVED_KEYS: ReadonlySet<string> = new Set(['', '.', '..', 'health', 'ttl', 'lock']);
/** Prefix of a hashed key. Plain keys starting with it are hashed too, so a hashed key never equals a plain one. */
export const HASHED_KEY_PREFIX = '__cknext_sha256:';
const SERVER_KEY = /^[A-Za-z0-9_.:-]{1,400}$/;
const NAMESPACED = /^(?:ns|nsapi):/;
const VALID_NAMESPACE = /^(?:ns|nsapi):[A-Za-z0-9_-]{1,64}:/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** RFC 6750 b64token: what may follow `Bearer ` without breaking the header. */
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const RETRY_BASE_MS = 50;
const RETRY_CAP_MS = 2_000;
const USER_AGENT = `cachekit-next (node ${process.versions.node}; undici)`;

/**
 * The key stored on the server for `key`. Keys the server accepts (`[A-Za-z0-9_.:-]`, at most 400 characters, no `..`,
 * a well-formed `ns:`/`nsapi:` namespace) pass unchanged, so another SDK writing the same key reads the same entry.
 * Any other key (unicode, spaces, slashes, longer) becomes {@link HASHED_KEY_PREFIX} + sha256 hex of its UTF-8 bytes
 * (UTF-16 code units behind a 0xff byte for strings with lone surrogates, which UTF-8 cannot represent distinctly).
 */
export function serverKeyFor(key: string): string {
  const valid =
    SERVER_KEY.test(key) &&
    !key.includes('..') &&
    !key.startsWith(HASHED_KEY_PREFIX) &&
    (!NAMESPACED.test(key) || VALID_NAMESPACE.test(key));
  if (valid) return key;
  const hash = createHash('sha256');
  if (!LONE_SURROGATE.test(key)) hash.update(key, 'utf8');
  else hash.update(Buffer.concat([Buffer.from([0xff]), Buffer.from(key, 'utf16le')]));
  return HASHED_KEY_PREFIX + hash.digest('hex');
}

/** Thrown into the abort signal when an operation's deadline passes. */
class DeadlineExceeded extends Error {
  override name = 'DeadlineExceeded';
}

interface Call {
  operation: string;
  method: Dispatcher.HttpMethod;
  /** Path under `/v1/cache/` (already encoded). */
  route: string;
  key?: string;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /** Statuses handed to `read` instead of being treated as errors. */
  accept: readonly number[];
}

type Reader<T> = (response: Dispatcher.ResponseData) => Promise<T>;

/**
 * The CachekitIO SaaS backend. Values are raw bytes (`application/octet-stream`); keys the server would refuse are
 * hashed (see {@link serverKeyFor}). `delete` cannot report a missing key against current servers, which answer
 * 200 for any DELETE; servers that answer 404 make it return `false`.
 */
export class CachekitIOBackend implements Backend, TtlCapable, LockCapable {
  readonly apiUrl: string;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly connections: number;
  readonly l1Status: L1Status;
  readonly staleTtlSeconds: number;
  readonly #origin: string;
  readonly #basePath: string;
  readonly #authorization: string;
  #pool: Pool | undefined;
  #closed = false;

  /**
   * @param options Explicit options win over the environment.
   * @param env The environment consulted for defaults (`CACHEKIT_API_KEY`, `CACHEKIT_API_URL`, `CACHEKIT_TIMEOUT`,
   *   `CACHEKIT_ALLOW_CUSTOM_HOST`, `CACHEKIT_MAX_RETRIES`, `CACHEKIT_CONNECTION_POOL_SIZE`).
   */
  constructor(options: CachekitIOBackendOptions = {}, env: NodeJS.ProcessEnv = process.env) {
    assertKnownOptions(COMPONENT, options, KNOWN_OPTIONS);

    const envKey = env.CACHEKIT_API_KEY?.trim() ? env.CACHEKIT_API_KEY.trim() : undefined;
    const apiKey = stringOption(COMPONENT, 'apiKey', options.apiKey, envKey ?? '');
    if (apiKey === '') throw new ConfigError(COMPONENT, 'apiKey', 'is required: pass apiKey or set CACHEKIT_API_KEY');
    if (!BEARER_TOKEN.test(apiKey)) {
      // The key itself is never echoed: it is a credential.
      throw new ConfigError(COMPONENT, 'apiKey', 'must be a bearer token (letters, digits and -._~+/ only)');
    }
    this.#authorization = `Bearer ${apiKey}`;

    const fromEnv = options.apiUrl === undefined && env.CACHEKIT_API_URL?.trim() ? env.CACHEKIT_API_URL.trim() : undefined;
    const rawUrl = stringOption(COMPONENT, 'apiUrl', options.apiUrl, fromEnv ?? DEFAULT_API_URL);
    const allowCustomHost = booleanOption(
      COMPONENT,
      'allowCustomHost',
      options.allowCustomHost,
      envBoolean('CACHEKIT_ALLOW_CUSTOM_HOST', env) ?? false,
    );
    const url = validateApiUrl(rawUrl, allowCustomHost, fromEnv !== undefined);
    this.#origin = url.origin;
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.apiUrl = `${url.origin}${this.#basePath}`;

    const envTimeoutSeconds = envNumber('CACHEKIT_TIMEOUT', env);
    if (envTimeoutSeconds !== undefined && !(envTimeoutSeconds > 0)) {
      throw new ConfigError('environment', 'CACHEKIT_TIMEOUT', `must be > 0 seconds, got ${envTimeoutSeconds}`);
    }
    this.timeoutMs = numberOption(COMPONENT, 'timeoutMs', options.timeoutMs, (envTimeoutSeconds ?? 5) * 1000, {
      min: 0,
      minInclusive: false,
    });
    this.maxRetries = numberOption(
      COMPONENT,
      'maxRetries',
      options.maxRetries,
      envInteger('CACHEKIT_MAX_RETRIES', env, 0) ?? 3,
      { min: 0, integer: true },
    );
    this.connections = numberOption(
      COMPONENT,
      'connections',
      options.connections,
      envInteger('CACHEKIT_CONNECTION_POOL_SIZE', env, 1) ?? 10,
      { min: 1, integer: true },
    );
    const l1Status = options.l1Status ?? 'miss';
    if (l1Status !== 'hit' && l1Status !== 'miss' && l1Status !== 'disabled') {
      throw new ConfigError(COMPONENT, 'l1Status', `must be 'hit', 'miss' or 'disabled', got ${JSON.stringify(l1Status)}`);
    }
    this.l1Status = l1Status;
    this.staleTtlSeconds = numberOption(COMPONENT, 'staleTtlSeconds', options.staleTtlSeconds, 0, {
      min: 0,
      max: MAX_TTL_SECONDS - 1,
    });
  }

  /** A backend configured only from the environment (cachekit-protocol.md section 1). */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): CachekitIOBackend {
    return new CachekitIOBackend({}, env);
  }

  // -------------------------------------------------------------------------------------------
  // The protocol
  // -------------------------------------------------------------------------------------------

  async get(key: string): Promise<Uint8Array | null> {
    const entry = await this.#read(key, 'get');
    return entry ? entry.value : null;
  }

  /**
   * The value with the server's freshness verdict. Inside the stale window (`X-CacheKit-Stale-TTL`) the bytes are still
   * returned with `fresh: false`: serve them and recompute. An absent freshness header means fresh, an unknown one
   * stale (the protocol's conservative reading).
   */
  async getWithFreshness(key: string): Promise<FreshnessEntry | null> {
    return this.#read(key, 'getWithFreshness');
  }

  async #read(key: string, operation: string): Promise<FreshnessEntry | null> {
    return this.#run({ operation, method: 'GET', route: this.#route(key, operation), key, accept: [200, 404] }, async (res) => {
      if (res.statusCode === 404) {
        await res.body.dump();
        return null;
      }
      const value = new Uint8Array(await res.body.arrayBuffer());
      const freshness = header(res, 'x-cachekit-freshness');
      const fresh = freshness === undefined || freshness === 'fresh';
      const freshFor = header(res, 'x-cachekit-fresh-for');
      // A stale entry has no freshness left whatever the header says; an absent header means no expiry.
      const freshForSeconds = !fresh ? 0 : freshFor === undefined ? null : parseFreshFor(freshFor);
      return { value, fresh, freshForSeconds };
    });
  }

  /** `ttlMs` is the remaining freshness (`X-CacheKit-Fresh-For`), 0 for a stale entry, `null` when it never expires. */
  async getWithTtl(key: string): Promise<EntryWithTtl | null> {
    const entry = await this.#read(key, 'getWithTtl');
    if (!entry) return null;
    return { value: entry.value, ttlMs: entry.freshForSeconds === null ? null : entry.freshForSeconds * 1000 };
  }

  /**
   * `ttlSeconds` undefined or 0 stores without expiry; fractions are rounded up (0.2 -> 1); more than 30 days is clamped
   * to 30 days (the server's cap) rather than refused, so a long-lived entry expires early instead of not being stored.
   */
  async set(key: string, value: Uint8Array, ttlSeconds?: number): Promise<void> {
    const route = this.#route(key, 'set');
    const ttl = normalizeTtl(ttlSeconds, 'set', key, true);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (ttl !== undefined) {
      headers['x-cachekit-ttl'] = String(ttl);
      const stale = Math.min(Math.ceil(this.staleTtlSeconds), MAX_TTL_SECONDS - ttl);
      if (stale > 0) headers['x-cachekit-stale-ttl'] = String(stale);
    }
    await this.#run({ operation: 'set', method: 'PUT', route, key, headers, body: value, accept: [200, 201, 204] }, (res) =>
      res.body.dump(),
    );
  }

  /** `true` on 200. Current servers answer 200 whether or not the key existed; older ones answer 404 (-> `false`). */
  async delete(key: string): Promise<boolean> {
    const route = this.#route(key, 'delete');
    return this.#run({ operation: 'delete', method: 'DELETE', route, key, accept: [200, 204, 404] }, async (res) => {
      await res.body.dump();
      return res.statusCode !== 404;
    });
  }

  /** HEAD: 200 while the entry is present (fresh or stale), 404 otherwise. */
  async exists(key: string): Promise<boolean> {
    const route = this.#route(key, 'exists');
    return this.#run({ operation: 'exists', method: 'HEAD', route, key, accept: [200, 404] }, async (res) => {
      await res.body.dump();
      return res.statusCode === 200;
    });
  }

  async healthCheck(): Promise<[boolean, HealthDetails]> {
    const started = performance.now();
    const latency = () => Math.round((performance.now() - started) * 100) / 100;
    const base = { backend_type: BACKEND, api_url: this.apiUrl };
    try {
      const body = await this.#run({ operation: 'healthCheck', method: 'GET', route: 'health', accept: [200] }, readJson);
      const status = isRecord(body) && typeof body.status === 'string' ? body.status : 'unknown';
      return [status === 'ok', { latency_ms: latency(), ...base, status }];
    } catch (error) {
      // Health reports failures instead of throwing: that is its contract.
      const kind = BackendError.is(error) ? error.kind : 'unknown';
      return [false, { latency_ms: latency(), ...base, status: 'error', error: String((error as Error)?.message ?? error), error_kind: kind }];
    }
  }

  // -------------------------------------------------------------------------------------------
  // TTL and locks
  // -------------------------------------------------------------------------------------------

  /** Seconds until eviction (end of the stale window, rounded up), `null` for no expiry, `undefined` when absent. */
  async getTtl(key: string): Promise<number | null | undefined> {
    const route = `${this.#route(key, 'getTtl')}/ttl`;
    return this.#run({ operation: 'getTtl', method: 'GET', route, key, accept: [200, 404] }, async (res) => {
      if (res.statusCode === 404) {
        await res.body.dump();
        return undefined;
      }
      const body = await readJson(res);
      const ttl = isRecord(body) ? body.ttl : undefined;
      if (ttl === null) return null;
      if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) throw new TypeError(`unexpected ttl body ${JSON.stringify(body)}`);
      return ttl;
    });
  }

  /**
   * New TTL for an existing fresh entry (same rounding and clamping as {@link set}; must be > 0). `false` when the key
   * is absent (404) or already stale (409: only a PUT of recomputed bytes makes it fresh again).
   */
  async refreshTtl(key: string, ttlSeconds: number): Promise<boolean> {
    const route = `${this.#route(key, 'refreshTtl')}/ttl`;
    const ttl = normalizeTtl(ttlSeconds, 'refreshTtl', key, false)!;
    const body = JSON.stringify({ ttl });
    const headers = { 'content-type': 'application/json' };
    return this.#run({ operation: 'refreshTtl', method: 'PATCH', route, key, headers, body, accept: [200, 204, 404, 409] }, async (res) => {
      await res.body.dump();
      return res.statusCode === 200 || res.statusCode === 204;
    });
  }

  /**
   * A lease of `timeoutMs` on the server, or `null` when someone else holds it (`{"lock_id": null}`, or 409 from older
   * servers). Retried like any call: a retry after a lost response finds the lock taken and returns `null`, which only
   * delays the work by one lease; it never lets two holders in.
   */
  async acquireLock(key: string, timeoutMs: number): Promise<string | null> {
    const route = `${this.#route(key, 'acquireLock')}/lock`;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw this.#permanent('acquireLock', key, `lock timeoutMs must be a positive number, got ${timeoutMs}`);
    }
    const body = JSON.stringify({ timeout_ms: Math.ceil(timeoutMs) });
    const headers = { 'content-type': 'application/json' };
    return this.#run({ operation: 'acquireLock', method: 'POST', route, key, headers, body, accept: [200, 409] }, async (res) => {
      if (res.statusCode === 409) {
        await res.body.dump();
        return null;
      }
      const json = await readJson(res);
      const id = isRecord(json) ? json.lock_id : undefined;
      return typeof id === 'string' && id !== '' ? id : null;
    });
  }

  /**
   * Releases the lock if `token` holds it. `false` when the server says it did not (`{"released": false}`, 404 or
   * 409); a server that answers a bare 200 for any id makes this `true`.
   */
  async releaseLock(key: string, token: string): Promise<boolean> {
    const route = `${this.#route(key, 'releaseLock')}/lock`;
    if (typeof token !== 'string' || token.trim() === '' || /[\r\n\0]/.test(token)) return false;
    const headers = { 'x-cachekit-lock-id': token };
    return this.#run({ operation: 'releaseLock', method: 'DELETE', route, key, headers, accept: [200, 204, 404, 409] }, async (res) => {
      if (res.statusCode !== 200) {
        await res.body.dump();
        return res.statusCode === 204;
      }
      const text = await res.body.text();
      if (text.trim() === '') return true;
      const json = JSON.parse(text) as unknown;
      return !(isRecord(json) && (json.released === false || json.success === false));
    });
  }

  /** Closes the connection pool; calls made afterwards fail with a permanent error. */
  async close(): Promise<void> {
    this.#closed = true;
    const pool = this.#pool;
    this.#pool = undefined;
    // close() lets in-flight requests finish; each is bounded by its own deadline.
    if (pool && !pool.closed) await pool.close();
  }

  // -------------------------------------------------------------------------------------------
  // Requests
  // -------------------------------------------------------------------------------------------

  #route(key: string, operation: string): string {
    if (typeof key !== 'string') throw this.#permanent(operation, undefined, `key must be a string, got ${typeof key}`);
    if (RESERVED_KEYS.has(key)) {
      throw this.#permanent(operation, key, `key ${JSON.stringify(key)} is reserved in the CachekitIO URL space (route token or dot segment)`);
    }
    return encodeURIComponent(serverKeyFor(key));
  }

  #permanent(operation: string, key: string | undefined, message: string): BackendError {
    return new BackendError(`${operation}: ${message}`, { kind: 'permanent', backend: BACKEND, operation, key });
  }

  #getPool(): Pool {
    if (this.#closed) throw new Error('the backend is closed');
    this.#pool ??= new Pool(this.#origin, {
      connections: this.connections,
      pipelining: 1,
      // The operation deadline is the real bound; these only stop a wedged socket outliving it.
      connectTimeout: this.timeoutMs,
      headersTimeout: this.timeoutMs + 1_000,
      bodyTimeout: this.timeoutMs + 1_000,
      keepAliveTimeout: 30_000,
    });
    return this.#pool;
  }

  /** One operation: attempts, classified failures and backoff, all under one deadline. */
  async #run<T>(call: Call, read: Reader<T>): Promise<T> {
    const path = `${this.#basePath}/v1/cache/${call.route}`;
    const where = `${call.method} ${path}`;
    const fail = (kind: BackendErrorKind, detail: string, cause?: unknown) =>
      new BackendError(`${call.operation}: ${where} ${detail}`, { kind, backend: BACKEND, operation: call.operation, key: call.key, cause });

    const started = performance.now();
    const deadline = started + this.timeoutMs;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DeadlineExceeded(`deadline of ${this.timeoutMs} ms passed`)), this.timeoutMs);
    timer.unref?.();
    const headers: Record<string, string> = {
      authorization: this.#authorization,
      'x-cachekit-l1-status': this.l1Status,
      'user-agent': USER_AGENT,
      ...call.headers,
    };

    try {
      for (let attempt = 0; ; attempt++) {
        let failure: BackendError;
        let retryAfterMs: number | undefined;
        try {
          const res = await this.#getPool().request({ path, method: call.method, headers, body: call.body, signal: controller.signal });
          if (call.accept.includes(res.statusCode)) {
            try {
              return await read(res);
            } catch (error) {
              if (controller.signal.aborted) throw error;
              // The server answered, but not in a shape the protocol allows: retrying would not change it.
              res.body.destroy();
              throw fail('unknown', `-> ${res.statusCode}: unexpected response body (${(error as Error).message})`, error);
            }
          }
          const detail = `-> HTTP ${res.statusCode}${await errorDetail(res)}`;
          const kind = kindOfStatus(res.statusCode);
          failure = fail(kind, detail);
          if (kind !== 'transient') throw failure;
          retryAfterMs = parseRetryAfter(header(res, 'retry-after'));
        } catch (error) {
          if (BackendError.is(error)) throw error;
          if (controller.signal.aborted) {
            throw fail('timeout', `did not complete within ${this.timeoutMs} ms (attempt ${attempt + 1})`, error);
          }
          if (this.#closed) throw fail('permanent', 'failed: the backend is closed', error);
          const kind = kindOfNetworkError(error);
          failure = fail(kind, `failed: ${describeError(error)}`, error);
          if (kind !== 'transient' && kind !== 'timeout') throw failure;
        }

        // A transient failure: retry if attempts and the deadline allow.
        if (attempt >= this.maxRetries) throw withNote(failure, `after ${attempt + 1} attempts`);
        const backoff = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** attempt);
        const delay = retryAfterMs ?? backoff / 2 + Math.random() * (backoff / 2);
        const remaining = deadline - performance.now();
        if (delay >= remaining) {
          const why = retryAfterMs === undefined ? '' : ` (server asked to retry after ${Math.round(retryAfterMs)} ms)`;
          throw withNote(failure, `giving up after ${attempt + 1} attempts: no time left within ${this.timeoutMs} ms${why}`);
        }
        await sleep(delay);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function validateApiUrl(raw: string, allowCustomHost: boolean, fromEnv: boolean): URL {
  const source = fromEnv ? ' (from CACHEKIT_API_URL)' : '';
  let url: URL;
  try {
    url = new URL(raw);
  } catch (error) {
    throw new ConfigError(COMPONENT, 'apiUrl', `must be an absolute URL${source}, got ${JSON.stringify(raw)}: ${(error as Error).message}`);
  }
  const bad = (problem: string) => new ConfigError(COMPONENT, 'apiUrl', `${problem}${source}, got ${JSON.stringify(url.href)}`);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw bad('must use https://');
  if (url.username || url.password) throw bad('must not contain credentials (use apiKey)');
  if (url.search || url.hash) throw bad('must not contain a query or fragment');
  const host = url.hostname.toLowerCase();
  const official = OFFICIAL_HOSTS.includes(host);
  if (!official && !allowCustomHost) {
    throw bad(`must point to an official host (${OFFICIAL_HOSTS.join(', ')}); set allowCustomHost or CACHEKIT_ALLOW_CUSTOM_HOST=true for others`);
  }
  if (url.protocol === 'http:' && (official || !allowCustomHost)) {
    throw bad(official ? 'must use https:// for the official hosts' : 'must use https:// (plain http:// needs allowCustomHost)');
  }
  return url;
}

/** An integer environment variable >= `min`, naming the variable when it is not one. */
function envInteger(name: string, env: NodeJS.ProcessEnv, min: number): number | undefined {
  const value = envNumber(name, env);
  if (value !== undefined && (!Number.isInteger(value) || value < min)) {
    throw new ConfigError('environment', name, `must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/** Whole seconds for `X-CacheKit-TTL`: undefined for no expiry, ceil, clamped to 30 days. */
function normalizeTtl(ttlSeconds: number | undefined, operation: string, key: string, zeroMeansForever: boolean): number | undefined {
  if (ttlSeconds === undefined || (ttlSeconds === 0 && zeroMeansForever)) return undefined;
  if (typeof ttlSeconds !== 'number' || Number.isNaN(ttlSeconds) || ttlSeconds <= 0) {
    throw new BackendError(`${operation}: ttlSeconds must be a positive number${zeroMeansForever ? ' or 0' : ''}, got ${String(ttlSeconds)}`, {
      kind: 'permanent',
      backend: BACKEND,
      operation,
      key,
    });
  }
  return Math.min(MAX_TTL_SECONDS, Math.ceil(ttlSeconds));
}

/** `X-CacheKit-Fresh-For`: 1-7 digits and at most 30 days, anything else reads as 0 (never extend local service). */
function parseFreshFor(raw: string): number {
  if (!/^\d{1,7}$/.test(raw)) return 0;
  const seconds = Number(raw);
  return seconds <= MAX_TTL_SECONDS ? seconds : 0;
}

/** `Retry-After` as delta-seconds or an HTTP date, in ms; `undefined` when absent or unreadable. */
function parseRetryAfter(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(raw)) return Number(raw) * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function kindOfStatus(status: number): BackendErrorKind {
  if (status === 401 || status === 403) return 'authentication';
  if (status === 429 || status >= 500) return 'transient';
  if (status === 408) return 'timeout';
  return 'permanent';
}

const PERMANENT_CODES = new Set([
  'UND_ERR_INVALID_ARG',
  'UND_ERR_NOT_SUPPORTED',
  'ERR_INVALID_ARG_TYPE',
  'ERR_INVALID_URL',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
/** undici's closed-socket errors; system errnos (ECONNREFUSED, ECONNRESET, EPIPE, EAI_AGAIN, ...) are matched by shape. */
const TRANSIENT_CODES = new Set(['UND_ERR_SOCKET', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH']);

/** Connection-level failures: refused, reset, closed sockets and DNS hiccups are worth another attempt. */
function kindOfNetworkError(error: unknown): BackendErrorKind {
  const code = errorCode(error);
  if (code === undefined) return error instanceof Error && error.name === 'HTTPParserError' ? 'permanent' : 'unknown';
  if (PERMANENT_CODES.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL')) return 'permanent';
  if (TIMEOUT_CODES.has(code)) return 'timeout';
  if (TRANSIENT_CODES.has(code) || (/^E[A-Z_]+$/.test(code) && !code.startsWith('ERR_'))) return 'transient';
  return 'unknown';
}

function errorCode(error: unknown): string | undefined {
  if (error instanceof AggregateError) return errorCode(error.errors[0]) ?? (error as { code?: string }).code;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const cause = (error as { cause?: unknown } | null)?.cause;
  return cause && cause !== error ? errorCode(cause) : undefined;
}

function describeError(error: unknown): string {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message || error.name : String(error);
  return code && !message.includes(code) ? `${code} ${message}` : message;
}

/** The server's error message (JSON `error`/`message`, or text), shortened; the body is consumed either way. */
async function errorDetail(res: Dispatcher.ResponseData): Promise<string> {
  let text: string;
  try {
    text = (await res.body.text()).trim();
  } catch (error) {
    return ` (body unreadable: ${describeError(error)})`;
  }
  if (text === '') return '';
  try {
    const json = JSON.parse(text) as unknown;
    if (isRecord(json)) {
      const message = json.error ?? json.message;
      if (typeof message === 'string') text = message;
    }
  } catch {
    // Not JSON: the raw text is the detail.
  }
  return `: ${text.length > 200 ? `${text.slice(0, 200)}...` : text}`;
}

function withNote(error: BackendError, note: string): BackendError {
  const message = error.message.replace(/^\[cachekit\] \[[^\]]*\] /, '');
  return new BackendError(`${message} (${note})`, {
    kind: error.kind,
    backend: error.backend,
    operation: error.operation,
    key: error.key,
    cause: error.cause,
  });
}

function header(res: Dispatcher.ResponseData, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readJson(res: Dispatcher.ResponseData): Promise<unknown> {
  return JSON.parse(await res.body.text()) as unknown;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
