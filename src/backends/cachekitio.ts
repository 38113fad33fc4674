/**
 * CachekitIO: the managed cachekit service over HTTPS (cachekit-protocol.md section 3), on one undici Pool per backend.
 *
 * Every operation runs under one deadline (`timeoutMs`) that covers queueing for a connection, every attempt, every
 * backoff pause and reading the body; 429, 5xx and connection failures are retried inside it, nothing else is (the
 * pool and that request loop are in cachekitio-http.ts).
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ConfigError, assertKnownOptions, booleanOption, envBoolean, envNumber, numberOption, stringOption } from '../shared/options.js';
import { BACKEND, CachekitIOHttp, header, isRecord, readJson } from './cachekitio-http.js';
import { LONE_SURROGATE, operationError } from './support.js';
import type { Backend, EntryWithTtl, HealthDetails, LockCapable, TtlCapable } from '../protocol/backend.js';
import { BackendError } from '../protocol/backend.js';
import { processEnv } from '../shared/env.js';

const COMPONENT = 'CachekitIOBackend';

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

const KNOWN_OPTIONS = ['apiKey', 'apiUrl', 'timeoutMs', 'allowCustomHost', 'maxRetries', 'connections', 'l1Status', 'staleTtlSeconds'] as const;

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
/** RFC 6750 b64token: what may follow `Bearer ` without breaking the header. */
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * The key stored on the server for `key`. Keys the server accepts (`[A-Za-z0-9_.:-]`, at most 400 characters, no `..`,
 * a well-formed `ns:`/`nsapi:` namespace) pass unchanged, so another SDK writing the same key reads the same entry.
 * Any other key (unicode, spaces, slashes, longer) becomes {@link HASHED_KEY_PREFIX} + sha256 hex of its UTF-8 bytes
 * (UTF-16 code units behind a 0xff byte for strings with lone surrogates, which UTF-8 cannot represent distinctly).
 */
export function serverKeyFor(key: string): string {
  const valid = SERVER_KEY.test(key) && !key.includes('..') && !key.startsWith(HASHED_KEY_PREFIX) && (!NAMESPACED.test(key) || VALID_NAMESPACE.test(key));
  if (valid) return key;
  const hash = createHash('sha256');
  if (!LONE_SURROGATE.test(key)) hash.update(key, 'utf8');
  else hash.update(Buffer.concat([Buffer.from([0xff]), Buffer.from(key, 'utf16le')]));
  return HASHED_KEY_PREFIX + hash.digest('hex');
}

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
  readonly #http: CachekitIOHttp;

  /**
   * @param options Explicit options win over the environment.
   * @param env The environment consulted for defaults (`CACHEKIT_API_KEY`, `CACHEKIT_API_URL`, `CACHEKIT_TIMEOUT`,
   *   `CACHEKIT_ALLOW_CUSTOM_HOST`, `CACHEKIT_MAX_RETRIES`, `CACHEKIT_CONNECTION_POOL_SIZE`).
   */
  constructor(options: CachekitIOBackendOptions = {}, env: NodeJS.ProcessEnv = processEnv()) {
    assertKnownOptions(COMPONENT, options, KNOWN_OPTIONS);

    const envKey = env.CACHEKIT_API_KEY?.trim() ? env.CACHEKIT_API_KEY.trim() : undefined;
    const apiKey = stringOption(COMPONENT, 'apiKey', options.apiKey, envKey ?? '');
    if (apiKey === '') throw new ConfigError(COMPONENT, 'apiKey', 'is required: pass apiKey or set CACHEKIT_API_KEY');
    if (!BEARER_TOKEN.test(apiKey)) {
      // The key itself is never echoed: it is a credential.
      throw new ConfigError(COMPONENT, 'apiKey', 'must be a bearer token (letters, digits and -._~+/ only)');
    }

    const fromEnv = options.apiUrl === undefined && env.CACHEKIT_API_URL?.trim() ? env.CACHEKIT_API_URL.trim() : undefined;
    const rawUrl = stringOption(COMPONENT, 'apiUrl', options.apiUrl, fromEnv ?? DEFAULT_API_URL);
    const allowCustomHost = booleanOption(COMPONENT, 'allowCustomHost', options.allowCustomHost, envBoolean('CACHEKIT_ALLOW_CUSTOM_HOST', env) ?? false);
    const url = validateApiUrl(rawUrl, allowCustomHost, fromEnv !== undefined);
    const basePath = url.pathname.replace(/\/+$/, '');
    this.apiUrl = `${url.origin}${basePath}`;

    const envTimeoutSeconds = envNumber('CACHEKIT_TIMEOUT', env);
    if (envTimeoutSeconds !== undefined && !(envTimeoutSeconds > 0)) {
      throw new ConfigError('environment', 'CACHEKIT_TIMEOUT', `must be > 0 seconds, got ${envTimeoutSeconds}`);
    }
    this.timeoutMs = numberOption(COMPONENT, 'timeoutMs', options.timeoutMs, (envTimeoutSeconds ?? 5) * 1000, {
      min: 0,
      minInclusive: false,
    });
    this.maxRetries = numberOption(COMPONENT, 'maxRetries', options.maxRetries, envInteger('CACHEKIT_MAX_RETRIES', env, 0) ?? 3, { min: 0, integer: true });
    this.connections = numberOption(COMPONENT, 'connections', options.connections, envInteger('CACHEKIT_CONNECTION_POOL_SIZE', env, 1) ?? 10, {
      min: 1,
      integer: true,
    });
    const l1Status = options.l1Status ?? 'miss';
    if (l1Status !== 'hit' && l1Status !== 'miss' && l1Status !== 'disabled') {
      throw new ConfigError(COMPONENT, 'l1Status', `must be 'hit', 'miss' or 'disabled', got ${JSON.stringify(l1Status)}`);
    }
    this.l1Status = l1Status;
    this.staleTtlSeconds = numberOption(COMPONENT, 'staleTtlSeconds', options.staleTtlSeconds, 0, {
      min: 0,
      max: MAX_TTL_SECONDS - 1,
    });
    this.#http = new CachekitIOHttp({
      origin: url.origin,
      basePath,
      authorization: `Bearer ${apiKey}`,
      l1Status,
      timeoutMs: this.timeoutMs,
      maxRetries: this.maxRetries,
      connections: this.connections,
    });
  }

  /** A backend configured only from the environment (cachekit-protocol.md section 1). */
  static fromEnv(env: NodeJS.ProcessEnv = processEnv()): CachekitIOBackend {
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
    return this.#http.run({ operation, method: 'GET', route: this.#route(key, operation), key, accept: [200, 404] }, async (res) => {
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
    await this.#http.run({ operation: 'set', method: 'PUT', route, key, headers, body: value, accept: [200, 201, 204] }, (res) => res.body.dump());
  }

  /** `true` on 200. Current servers answer 200 whether or not the key existed; older ones answer 404 (-> `false`). */
  async delete(key: string): Promise<boolean> {
    const route = this.#route(key, 'delete');
    return this.#http.run({ operation: 'delete', method: 'DELETE', route, key, accept: [200, 204, 404] }, async (res) => {
      await res.body.dump();
      return res.statusCode !== 404;
    });
  }

  /** HEAD: 200 while the entry is present (fresh or stale), 404 otherwise. */
  async exists(key: string): Promise<boolean> {
    const route = this.#route(key, 'exists');
    return this.#http.run({ operation: 'exists', method: 'HEAD', route, key, accept: [200, 404] }, async (res) => {
      await res.body.dump();
      return res.statusCode === 200;
    });
  }

  async healthCheck(): Promise<[boolean, HealthDetails]> {
    const started = performance.now();
    const latency = () => Math.round((performance.now() - started) * 100) / 100;
    const base = { backend_type: BACKEND, api_url: this.apiUrl };
    try {
      const body = await this.#http.run({ operation: 'healthCheck', method: 'GET', route: 'health', accept: [200] }, readJson);
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
    return this.#http.run({ operation: 'getTtl', method: 'GET', route, key, accept: [200, 404] }, async (res) => {
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
    return this.#http.run({ operation: 'refreshTtl', method: 'PATCH', route, key, headers, body, accept: [200, 204, 404, 409] }, async (res) => {
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
    return this.#http.run({ operation: 'acquireLock', method: 'POST', route, key, headers, body, accept: [200, 409] }, async (res) => {
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
    return this.#http.run({ operation: 'releaseLock', method: 'DELETE', route, key, headers, accept: [200, 204, 404, 409] }, async (res) => {
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
    await this.#http.close();
  }

  // -------------------------------------------------------------------------------------------
  // Keys
  // -------------------------------------------------------------------------------------------

  /** The encoded route of `key` under `/v1/cache/`; reserved route tokens are refused. */
  #route(key: string, operation: string): string {
    if (typeof key !== 'string') throw this.#permanent(operation, undefined, `key must be a string, got ${typeof key}`);
    if (RESERVED_KEYS.has(key)) {
      throw this.#permanent(operation, key, `key ${JSON.stringify(key)} is reserved in the CachekitIO URL space (route token or dot segment)`);
    }
    return encodeURIComponent(serverKeyFor(key));
  }

  #permanent(operation: string, key: string | undefined, message: string): BackendError {
    return operationError(BACKEND, 'permanent', operation, key, message);
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
    throw operationError(
      BACKEND,
      'permanent',
      operation,
      key,
      `ttlSeconds must be a positive number${zeroMeansForever ? ' or 0' : ''}, got ${String(ttlSeconds)}`,
    );
  }
  return Math.min(MAX_TTL_SECONDS, Math.ceil(ttlSeconds));
}

/** `X-CacheKit-Fresh-For`: 1-7 digits and at most 30 days, anything else reads as 0 (never extend local service). */
function parseFreshFor(raw: string): number {
  if (!/^\d{1,7}$/.test(raw)) return 0;
  const seconds = Number(raw);
  return seconds <= MAX_TTL_SECONDS ? seconds : 0;
}
