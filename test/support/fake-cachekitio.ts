/**
 * A local fake of the CachekitIO HTTP API (cachekit-protocol.md section 3, and the public protocol's spec/saas-api.md),
 * on a node:http server bound to a free loopback port. It follows the documented behaviour, not our client: auth,
 * key validation, TTL and stale-TTL validation, the 25 MB limit, the fresh -> stale -> evicted lifecycle, locks with
 * leases, TTL endpoints, `Cache-Control: no-store` on every response. For tests it also records every request, counts
 * TCP connections, injects failures and delays, and has a clock that can be moved forward.
 *
 * Deviations, on purpose: lifetimes are kept in milliseconds (the real store stamps `floor(now) + ttl`, which can end
 * an entry up to a second early and would make TTL tests flaky); lock release answers `{"released": false}` for an id
 * that does not hold the lock (the documented API only says 200); `PATCH .../ttl` answers 404 for an absent key, as the
 * project's contract says (the public spec's newest servers answer a 200 no-op).
 */
import { randomUUID } from 'node:crypto';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const MAX_TTL_SECONDS = 2_592_000;

export interface FakeCachekitIOOptions {
  /** Accepted bearer keys. Keys must start with `ck_live_`, `ck_sdk_` or `ck_api_`. @default ['ck_live_test'] */
  apiKeys?: string[];
  /** Known keys that are refused with 403. @default [] */
  revokedKeys?: string[];
  /** Largest stored value in bytes (413 above). @default 25 MiB */
  maxValueBytes?: number;
  /** Answer 404 to a DELETE of an absent key, as older servers did. @default false */
  legacyDelete404?: boolean;
  /** Answer 409 to a contested lock, as an older revision of the spec said. @default false */
  legacyLock409?: boolean;
}

export interface StoredEntry {
  value: Buffer;
  /** Fake-clock ms; `Infinity` for an entry without expiry. */
  freshUntil: number;
  /** Fake-clock ms; end of the stale window. */
  evictAt: number;
  staleTtlSeconds: number;
}

export interface RecordedRequest {
  method: string;
  /** The raw request target as received. */
  url: string;
  /** The decoded cache key, when the route has one. */
  key?: string;
  headers: IncomingHttpHeaders;
  /** Request body size in bytes. */
  bodyBytes: number;
  /** Response status (0 until answered). */
  status: number;
  /** `Date.now()` when the request arrived. */
  at: number;
}

interface Fault {
  remaining: number;
  /** An HTTP status, or `reset` to drop the connection without answering. */
  status: number | 'reset';
  retryAfter?: string;
  body: string;
}

const KEY_PREFIXES = ['ck_live_', 'ck_sdk_', 'ck_api_'];
const VALID_KEY = /^[A-Za-z0-9_.:-]{1,400}$/;
const L1_STATUSES = new Set(['hit', 'miss', 'disabled']);
const ALLOW: Record<string, string> = { entry: 'GET, HEAD, PUT, DELETE', ttl: 'GET, PATCH', lock: 'POST, DELETE', health: 'GET' };

export class FakeCachekitIO {
  readonly store = new Map<string, StoredEntry>();
  readonly locks = new Map<string, { id: string; expiresAt: number }>();
  readonly requests: RecordedRequest[] = [];
  /** TCP connections accepted since start (or the last `reset`). */
  connections = 0;
  readonly #server: http.Server;
  readonly #sockets = new Set<Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #apiKeys: Set<string>;
  readonly #revoked: Set<string>;
  readonly #maxValueBytes: number;
  readonly #options: FakeCachekitIOOptions;
  #faults: Fault[] = [];
  #delayMs = 0;
  #clockOffsetMs = 0;
  #port = 0;

  private constructor(options: FakeCachekitIOOptions) {
    this.#options = options;
    this.#apiKeys = new Set(options.apiKeys ?? ['ck_live_test']);
    this.#revoked = new Set(options.revokedKeys ?? []);
    this.#maxValueBytes = options.maxValueBytes ?? 25 * 1024 * 1024;
    this.#server = http.createServer((req, res) => this.#onRequest(req, res));
    this.#server.on('connection', (socket: Socket) => {
      this.connections++;
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  static async start(options: FakeCachekitIOOptions = {}): Promise<FakeCachekitIO> {
    const fake = new FakeCachekitIO(options);
    await new Promise<void>((resolve, reject) => {
      fake.#server.once('error', reject);
      fake.#server.listen(0, '127.0.0.1', () => resolve());
    });
    fake.#port = (fake.#server.address() as AddressInfo).port;
    return fake;
  }

  get port(): number {
    return this.#port;
  }

  /** `http://127.0.0.1:<port>` */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** The fake's clock (ms): `Date.now()` plus whatever `advance` added. */
  now(): number {
    return Date.now() + this.#clockOffsetMs;
  }

  /** Moves the fake's clock forward, e.g. through a TTL or a stale window, without sleeping. */
  advance(ms: number): void {
    this.#clockOffsetMs += ms;
  }

  /**
   * The next `count` requests are answered with `status` (before authentication, like an overloaded edge), or their
   * connection is dropped without an answer (`reset`). Calls queue: `failNext(1, 500); failNext(1, 502)`.
   */
  failNext(count: number, status: number | 'reset', options: { retryAfter?: string; body?: string } = {}): void {
    this.#faults.push({
      remaining: count,
      status,
      retryAfter: options.retryAfter,
      body: options.body ?? JSON.stringify({ error: `injected ${status}` }),
    });
  }

  /** Every response waits `ms` before being processed (0 to stop). */
  delay(ms: number): void {
    this.#delayMs = ms;
  }

  /** Clears faults, delay, the request log and the connection count (not the stored entries). */
  reset(): void {
    this.#faults = [];
    this.#delayMs = 0;
    this.requests.length = 0;
    this.connections = 0;
  }

  /** Stops listening and drops every connection (like a crash). */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  // -------------------------------------------------------------------------------------------

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const record: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      bodyBytes: 0,
      status: 0,
      at: Date.now(),
    };
    this.requests.push(record);
    res.on('finish', () => {
      record.status = res.statusCode;
    });
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Vary', 'Authorization');

    // An announced oversize upload is refused at once, as an edge does; the client may still be sending.
    if (Number(req.headers['content-length'] ?? 0) > this.#maxValueBytes) {
      res.setHeader('Connection', 'close');
      this.#json(res, 413, { error: `value exceeds ${this.#maxValueBytes} bytes` });
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      record.bodyBytes += chunk.length;
      if (record.bodyBytes > this.#maxValueBytes) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const handle = () => {
        try {
          this.#handle(req, res, record, tooLarge ? null : Buffer.concat(chunks));
        } catch (error) {
          this.#json(res, 500, { error: `fake failed: ${(error as Error).message}` });
        }
      };
      if (this.#delayMs <= 0) return handle();
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (!res.destroyed) handle();
      }, this.#delayMs);
      this.#timers.add(timer);
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse, record: RecordedRequest, body: Buffer | null): void {
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') return void res.writeHead(204).end();

    const fault = this.#faults[0];
    if (fault) {
      if (--fault.remaining <= 0) this.#faults.shift();
      if (fault.status === 'reset') return void res.socket?.destroy();
      if (fault.retryAfter !== undefined) res.setHeader('Retry-After', fault.retryAfter);
      res.writeHead(fault.status, { 'Content-Type': 'application/json' });
      return void res.end(fault.body);
    }

    // Authentication precedes every other check.
    const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const apiKey = auth?.[1];
    if (!apiKey || !KEY_PREFIXES.some((p) => apiKey.startsWith(p))) return this.#json(res, 401, { error: 'missing or malformed API key' });
    if (this.#revoked.has(apiKey)) return this.#json(res, 403, { error: 'API key revoked' });
    if (!this.#apiKeys.has(apiKey)) return this.#json(res, 401, { error: 'unknown API key' });
    if (apiKey.startsWith('ck_sdk_') && !L1_STATUSES.has(String(req.headers['x-cachekit-l1-status']))) {
      return this.#json(res, 400, { error: 'X-CacheKit-L1-Status (hit|miss|disabled) is required for SDK keys' });
    }

    // WHATWG parsing collapses dot segments (also %2e), then the path is split on raw '/'.
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    const segments = url.pathname.split('/');
    if (segments[1] !== 'v1' || segments[2] !== 'cache' || segments.length < 4 || segments.length > 5 || segments[3] === '') {
      return this.#json(res, 404, { error: 'no such route' });
    }
    const raw = segments[3]!;
    const sub = segments[4];
    const route = segments.length === 4 ? (raw === 'health' ? 'health' : 'entry') : sub === 'ttl' || sub === 'lock' ? sub : undefined;
    if (route === undefined) return this.#json(res, 404, { error: 'no such route' });
    const allow = ALLOW[route]!;
    if (!allow.split(', ').includes(method)) {
      res.setHeader('Allow', allow);
      return this.#json(res, 405, { error: `${method} not allowed` });
    }
    if (route === 'health') {
      return this.#json(res, 200, { status: 'ok', cache_entries: this.store.size, active_locks: this.locks.size });
    }

    let key: string;
    try {
      key = decodeURIComponent(raw);
    } catch {
      return this.#json(res, 400, { error: 'malformed percent-encoding in key' });
    }
    record.key = key;
    const keyProblem = validateKey(key);
    if (keyProblem) return this.#json(res, 400, { error: `invalid key: ${keyProblem}` });
    const mutation = !(method === 'GET' || method === 'HEAD');
    if (mutation && apiKey.startsWith('ck_sdk_') && key.startsWith('nsapi:'))
      return this.#json(res, 403, { error: 'nsapi: keys are not writable by SDK keys' });
    if (mutation && apiKey.startsWith('ck_api_') && key.startsWith('ns:')) return this.#json(res, 403, { error: 'ns: keys are not writable by API keys' });

    if (route === 'entry') return this.#entry(req, res, method, key, body);
    if (route === 'ttl') return this.#ttl(res, method, key, body);
    return this.#lock(req, res, method, key, url, body);
  }

  #entry(req: IncomingMessage, res: ServerResponse, method: string, key: string, body: Buffer | null): void {
    if (method === 'GET' || method === 'HEAD') {
      const entry = this.#live(key);
      if (!entry) return this.#json(res, 404, { error: 'not found' });
      const now = this.now();
      const stale = now >= entry.freshUntil;
      const headers: Record<string, string | number> = {
        'Content-Type': 'application/octet-stream',
        'Content-Length': entry.value.length,
        'X-CacheKit-Freshness': stale ? 'stale' : 'fresh',
      };
      // Fresh-For: whole seconds left, rounded down; omitted for entries without expiry; never on HEAD.
      if (method === 'GET' && entry.freshUntil !== Infinity) {
        headers['X-CacheKit-Fresh-For'] = stale ? 0 : Math.max(0, Math.floor((entry.freshUntil - now) / 1000));
      }
      res.writeHead(200, headers);
      return void res.end(method === 'GET' ? entry.value : undefined);
    }
    if (method === 'DELETE') {
      const existed = this.#live(key) !== undefined;
      this.store.delete(key);
      if (!existed && this.#options.legacyDelete404) return this.#json(res, 404, { error: 'not found' });
      return this.#json(res, 200, { success: true });
    }
    // PUT
    const ttlHeader = header(req, 'x-cachekit-ttl') ?? header(req, 'x-ttl');
    const staleHeader = header(req, 'x-cachekit-stale-ttl');
    let ttl: number | undefined;
    if (ttlHeader !== undefined) {
      if (!/^\d+$/.test(ttlHeader)) return this.#json(res, 400, { error: 'TTL must be a positive integer' });
      ttl = Number(ttlHeader);
      if (ttl < 1 || ttl > MAX_TTL_SECONDS) return this.#json(res, 400, { error: `TTL must be between 1 and ${MAX_TTL_SECONDS}` });
    }
    let staleTtl = 0;
    if (staleHeader !== undefined) {
      if (!/^\d+$/.test(staleHeader) || Number(staleHeader) > MAX_TTL_SECONDS - 1) {
        return this.#json(res, 400, { error: 'Stale-TTL must be an integer between 0 and 2591999' });
      }
      if (ttl === undefined) return this.#json(res, 400, { error: 'Stale-TTL requires a TTL' });
      staleTtl = Number(staleHeader);
      if (ttl + staleTtl > MAX_TTL_SECONDS) return this.#json(res, 400, { error: 'TTL plus Stale-TTL exceeds 30 days' });
    }
    if (body === null) return this.#json(res, 413, { error: `value exceeds ${this.#maxValueBytes} bytes` });
    const now = this.now();
    const freshUntil = ttl === undefined ? Infinity : now + ttl * 1000;
    this.store.set(key, { value: body, freshUntil, evictAt: freshUntil + staleTtl * 1000, staleTtlSeconds: staleTtl });
    return this.#json(res, 200, { success: true });
  }

  #ttl(res: ServerResponse, method: string, key: string, body: Buffer | null): void {
    const entry = this.#live(key);
    if (method === 'GET') {
      if (!entry) return this.#json(res, 404, { error: 'not found' });
      if (entry.evictAt === Infinity) return this.#json(res, 200, { ttl: null });
      // Seconds until eviction, rounded up: a present key never reads 0.
      return this.#json(res, 200, { ttl: Math.max(1, Math.ceil((entry.evictAt - this.now()) / 1000)) });
    }
    // PATCH
    const ttl = jsonField(body, 'ttl');
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) {
      return this.#json(res, 400, { error: `ttl must be an integer between 1 and ${MAX_TTL_SECONDS}` });
    }
    if (!entry) return this.#json(res, 404, { error: 'not found' });
    const now = this.now();
    if (now >= entry.freshUntil) return this.#json(res, 409, { error: 'entry is stale: PUT recomputed bytes instead' });
    if (ttl + entry.staleTtlSeconds > MAX_TTL_SECONDS) return this.#json(res, 400, { error: 'ttl plus the stale window exceeds 30 days' });
    entry.freshUntil = now + ttl * 1000;
    entry.evictAt = entry.freshUntil + entry.staleTtlSeconds * 1000;
    return this.#json(res, 200, { success: true });
  }

  #lock(req: IncomingMessage, res: ServerResponse, method: string, key: string, url: URL, body: Buffer | null): void {
    const now = this.now();
    const held = this.locks.get(key);
    const live = held && held.expiresAt > now ? held : undefined;
    if (method === 'POST') {
      const timeoutMs = jsonField(body, 'timeout_ms');
      if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1) {
        return this.#json(res, 400, { error: 'timeout_ms must be a positive integer' });
      }
      if (live) {
        return this.#options.legacyLock409 ? this.#json(res, 409, { error: 'lock held' }) : this.#json(res, 200, { lock_id: null });
      }
      const id = randomUUID();
      this.locks.set(key, { id, expiresAt: now + timeoutMs });
      return this.#json(res, 200, { lock_id: id });
    }
    // DELETE: the id travels in the header (legacy ?lock_id= still read); blank counts as absent.
    const id = (header(req, 'x-cachekit-lock-id') ?? url.searchParams.get('lock_id') ?? '').trim();
    if (id === '') return this.#json(res, 400, { error: 'X-CacheKit-Lock-Id is required' });
    const released = live !== undefined && live.id === id;
    if (released || (held && !live)) this.locks.delete(key);
    return this.#json(res, 200, { success: true, released });
  }

  #live(key: string): StoredEntry | undefined {
    const entry = this.store.get(key);
    if (entry && this.now() >= entry.evictAt) {
      this.store.delete(key);
      return undefined;
    }
    return entry;
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }
}

/** The server's key rules; a description of the problem, or undefined when the key is valid. */
export function validateKey(key: string): string | undefined {
  if (!VALID_KEY.test(key)) return key.length > 400 ? 'longer than 400 characters' : 'characters outside [A-Za-z0-9_.:-]';
  if (key.includes('..')) return 'contains ..';
  if (/^(ns|nsapi):/.test(key) && !/^(ns|nsapi):[A-Za-z0-9_-]{1,64}:/.test(key)) return 'malformed namespace';
  return undefined;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function jsonField(body: Buffer | null, field: string): unknown {
  if (!body || body.length === 0) return undefined;
  try {
    const json = JSON.parse(body.toString('utf8')) as unknown;
    return typeof json === 'object' && json !== null ? (json as Record<string, unknown>)[field] : undefined;
  } catch {
    // Unparseable JSON is answered 400 by the caller, like a missing field.
    return undefined;
  }
}
