/**
 * Memcached L2 backend on memjs 1.3 (binary protocol), spreading keys over several servers.
 *
 * Every entry is stored with its absolute expiry (unix seconds, 0 = never) in the item's 32-bit flags, which memcached
 * returns with every get: that is how `getWithTtl`/`getTtl` answer from the same single round trip. Framing, server
 * selection and the sockets are in memcached-connection.ts.
 */
import { createHash } from 'node:crypto';
import { debuglog } from 'node:util';
import type memjs from 'memjs';
import { assertKnownOptions, ConfigError, describe, envNumberOption, numberOption, stringOption } from '../shared/options.js';
import {
  type BoundedServer,
  EMPTY,
  OP,
  STATUS_EXISTS,
  STATUS_NOT_FOUND,
  STATUS_OK,
  STATUS_TOO_LARGE,
  faultKind,
  frame,
  loadMemjs,
  rendezvous,
  statusKind,
  statusName,
} from './memcached-connection.js';
import { LONE_SURROGATE, codeOf, errorMessage, operationError } from './support.js';
import type { AddCapable, Backend, CounterCapable, EntryWithTtl, HealthDetails, TtlCapable } from '../protocol/backend.js';
import { BackendError } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';
import { processEnv } from '../shared/env.js';

const BACKEND = 'memcached';
const COMPONENT = 'MemcachedBackend';

/** Memcached reads an expiry above 30 days as an absolute unix time, so longer TTLs are clamped to this. */
export const MEMCACHED_MAX_TTL_SECONDS = 2_592_000;
/** Longest key memcached accepts, in bytes. */
export const MEMCACHED_MAX_KEY_BYTES = 250;
/** Keys that cannot be sent as they are become `keyPrefix + HASHED_KEY_MARKER + sha256 hex`. */
export const HASHED_KEY_MARKER = '#sha256:';
const MAX_PREFIX_BYTES = MEMCACHED_MAX_KEY_BYTES - HASHED_KEY_MARKER.length - 64;

export interface MemcachedBackendOptions {
  /**
   * The servers, each `host:port` (IPv6 as `[::1]:11211`). Keys are spread over them by rendezvous hashing, so
   * adding or removing a server moves only that server's share of the keys.
   * @default CACHEKIT_MEMCACHED_SERVERS (JSON list or comma list), else `['127.0.0.1:11211']`
   */
  servers?: readonly string[];
  /** Prepended to every key (namespacing). At most 178 UTF-8 bytes, no spaces or control characters. @default CACHEKIT_MEMCACHED_KEY_PREFIX, else `''` */
  keyPrefix?: string;
  /** How long a request may wait for its reply, in ms. @default CACHEKIT_MEMCACHED_TIMEOUT (seconds) x 1000, else 1000 */
  timeoutMs?: number;
  /** How long establishing a connection may take, in ms. @default CACHEKIT_MEMCACHED_CONNECT_TIMEOUT (seconds) x 1000, else 2000 */
  connectTimeoutMs?: number;
  /**
   * Largest value accepted, in bytes; larger values are refused before being sent. Keep it at or below the servers'
   * item size limit (memcached `-I`, 1 MiB by default), which also counts the key and ~50 bytes of item overhead.
   * @default CACHEKIT_MEMCACHED_MAX_ITEM_SIZE_BYTES, else 1048576
   */
  maxItemSizeBytes?: number;
}

const KNOWN_OPTIONS = ['servers', 'keyPrefix', 'timeoutMs', 'connectTimeoutMs', 'maxItemSizeBytes'];

/** A key is sent as-is only when memcached accepts it byte for byte: no spaces or control characters. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the memcached protocol forbids control characters in keys
const FORBIDDEN_KEY_CHARS = /[\u0000-\u0020\u007f]/;
const log = debuglog('cachekit');

interface ServerAddress {
  host: string;
  port: number;
  /** `host:port` as configured. */
  name: string;
}

interface ResolvedOptions {
  servers: ServerAddress[];
  keyPrefix: string;
  timeoutMs: number;
  connectTimeoutMs: number;
  maxItemSizeBytes: number;
}

interface Fetched {
  value: Buffer;
  /** Absolute expiry in unix seconds, 0 when the entry never expires. */
  expiresAt: number;
  cas: Buffer;
}

/**
 * Memcached as the shared L2. Implements the protocol plus TTL inspection (from the item flags) set-if-absent and an atomic counter (`incr`).
 *
 * Every call ends within `connectTimeoutMs + timeoutMs`: memjs gets one attempt per call (no retry, no failover: a
 * failover would move keys to another server and serve stale data once the first one is back), and each call also
 * carries its own deadline. A failed connection is re-established by the next call.
 */
/** The memjs client and one BoundedServer per configured server. */
interface Connection {
  client: memjs.Client;
  servers: BoundedServer[];
}

export class MemcachedBackend implements Backend, TtlCapable, AddCapable, CounterCapable {
  readonly #options: ResolvedOptions;
  /** The memjs client and its servers, created on the first call (memjs itself is imported then). */
  #connection: Promise<Connection> | undefined;
  #opened: Connection | undefined;
  readonly #pending = new Set<Promise<unknown>>();
  #closed = false;

  constructor(options: MemcachedBackendOptions = {}, env: NodeJS.ProcessEnv = processEnv()) {
    this.#options = resolveOptions(options, env);
  }

  #connect(): Promise<Connection> {
    return (this.#connection ??= loadMemjs().then(
      ({ memjs, BoundedServer }) => {
        const { timeoutMs, connectTimeoutMs } = this.#options;
        const servers = this.#options.servers.map(
          ({ host, port }) =>
            new BoundedServer(host, port, undefined, undefined, {
              timeout: timeoutMs / 1000,
              conntimeout: connectTimeoutMs / 1000,
              keepAlive: true,
              keepAliveDelay: 30,
            }),
        );
        // memjs logs every failure to the console by default; the caller gets them as BackendErrors instead, and
        // NODE_DEBUG=cachekit shows memjs's own lines.
        const client = new memjs.Client(servers, { retries: 1, retry_delay: 0, failover: false, expires: 0, logger: { log } });
        // Rendezvous hashing instead of memjs's `hash % n`, which remaps almost every key when a server is added.
        (client as unknown as { getServer(key: string): number }).getServer = rendezvous(this.#options.servers.map(({ name }) => name));
        return (this.#opened = { client, servers });
      },
      (error: unknown) => {
        this.#connection = undefined; // the next call tries the import again
        throw new BackendError(`memjs could not be loaded: ${errorMessage(error)}`, {
          kind: 'permanent',
          backend: BACKEND,
          operation: 'connect',
          cause: error,
        });
      },
    ));
  }

  /** Builds a backend from the environment variables (explicit options are not consulted). */
  static fromEnv(env: NodeJS.ProcessEnv = processEnv()): MemcachedBackend {
    return new MemcachedBackend({}, env);
  }

  /** The prefix of every key (option or CACHEKIT_MEMCACHED_KEY_PREFIX); encrypted entries bind it in their AAD. */
  get keyPrefix(): string {
    return this.#options.keyPrefix;
  }

  /** Longest time one call can take before it rejects, in ms (`connectTimeoutMs + timeoutMs`). */
  get boundMs(): number {
    return this.#options.connectTimeoutMs + this.#options.timeoutMs;
  }

  /**
   * The key as sent to memcached: `keyPrefix + key`, or `keyPrefix + '#sha256:' + hex` when that is longer than 250
   * UTF-8 bytes, holds spaces or control characters, or itself starts with the marker (so a hashed key never equals
   * a plain one).
   */
  keyFor(key: string): string {
    const full = this.#options.keyPrefix + key;
    if (
      key.length > 0 &&
      Buffer.byteLength(full) <= MEMCACHED_MAX_KEY_BYTES &&
      !FORBIDDEN_KEY_CHARS.test(key) &&
      !LONE_SURROGATE.test(key) &&
      !key.startsWith(HASHED_KEY_MARKER)
    ) {
      return full;
    }
    // UTF-16 code units encode any JS string injectively, lone surrogates included.
    const digest = createHash('sha256').update(Buffer.from(key, 'utf16le')).digest('hex');
    return this.#options.keyPrefix + HASHED_KEY_MARKER + digest;
  }

  async get(key: string): Promise<Uint8Array | null> {
    return (await this.#fetch('get', key))?.value ?? null;
  }

  async exists(key: string): Promise<boolean> {
    // Memcached has no existence check that leaves the item untouched; the spec asks for a get.
    return (await this.#fetch('exists', key)) !== null;
  }

  async getWithTtl(key: string): Promise<EntryWithTtl | null> {
    const entry = await this.#fetch('getWithTtl', key);
    if (!entry) return null;
    return { value: entry.value, ttlMs: entry.expiresAt === 0 ? null : Math.max(0, entry.expiresAt * 1000 - nowMs()) };
  }

  async getTtl(key: string): Promise<number | null | undefined> {
    const entry = await this.#fetch('getTtl', key);
    if (!entry) return undefined;
    return entry.expiresAt === 0 ? null : Math.max(0, Math.ceil(entry.expiresAt - nowMs() / 1000));
  }

  async set(key: string, value: Uint8Array, ttlSeconds?: number): Promise<void> {
    const response = await this.#store('set', OP.set, key, value, ttlSeconds);
    if (response.header.status !== STATUS_OK) throw this.#statusError('set', key, response.header.status, value.byteLength);
  }

  async add(key: string, value: Uint8Array, ttlSeconds?: number): Promise<boolean> {
    const response = await this.#store('add', OP.add, key, value, ttlSeconds);
    if (response.header.status === STATUS_OK) return true;
    if (response.header.status === STATUS_EXISTS) return false;
    throw this.#statusError('add', key, response.header.status, value.byteLength);
  }

  async delete(key: string): Promise<boolean> {
    const storedKey = this.keyFor(key);
    const response = await this.#send('delete', key, frame(OP.delete, storedKey, EMPTY, EMPTY), storedKey);
    const { status } = response.header;
    if (status === STATUS_OK) return true;
    if (status === STATUS_NOT_FOUND) return false;
    throw this.#statusError('delete', key, status);
  }

  /** Memcached's own `incr` (one round trip, atomic on the server); a missing counter is created holding `initial`. */
  async incr(key: string, initial: number): Promise<number> {
    if (!Number.isSafeInteger(initial) || initial < 0) throw this.#invalid('incr', key, `initial must be a safe integer >= 0, got ${describe(initial)}`);
    const extras = Buffer.alloc(20); // delta (8 bytes), initial value (8 bytes), expiry (4 bytes: 0 = never)
    extras.writeBigUInt64BE(1n, 0);
    extras.writeBigUInt64BE(BigInt(initial), 8);
    const storedKey = this.keyFor(key);
    const response = await this.#send('incr', key, frame(OP.increment, storedKey, extras, EMPTY), storedKey);
    const { status } = response.header;
    if (status !== STATUS_OK || response.val.byteLength !== 8) throw this.#statusError('incr', key, status);
    return Number(response.val.readBigUInt64BE(0));
  }

  /**
   * Sets a new TTL on an existing entry. Memcached's `touch` cannot change the flags that carry the expiry, so this
   * reads the entry and rewrites it with a CAS-guarded set: atomic (a concurrent write wins and keeps its own TTL),
   * at the cost of sending the value back once.
   */
  async refreshTtl(key: string, ttlSeconds: number): Promise<boolean> {
    if (typeof ttlSeconds !== 'number' || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
      throw this.#invalid('refreshTtl', key, `ttlSeconds must be a finite number > 0, got ${describe(ttlSeconds)}`);
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      const entry = await this.#fetch('refreshTtl', key);
      if (!entry) return false;
      const response = await this.#store('refreshTtl', OP.set, key, entry.value, ttlSeconds, entry.cas);
      const { status } = response.header;
      if (status === STATUS_OK) return true;
      if (status === STATUS_NOT_FOUND) return false;
      if (status !== STATUS_EXISTS) throw this.#statusError('refreshTtl', key, status, entry.value.byteLength);
    }
    // Rewritten by others three times in a row: the entry exists and carries the TTL of its latest writer.
    return true;
  }

  /**
   * Asks every server for its version. Healthy only when all servers answer: each holds its own share of the keys,
   * so one down server means misses (and failed writes) for that share.
   */
  async healthCheck(): Promise<[boolean, HealthDetails]> {
    const started = performance.now();
    let connections: BoundedServer[];
    try {
      connections = (await this.#connect()).servers;
    } catch (error) {
      // memjs did not load: unhealthy, reported like any other failure.
      return [false, { latency_ms: performance.now() - started, backend_type: BACKEND, error: errorMessage(error) }];
    }
    const servers = await Promise.all(
      connections.map(async (server, index) => {
        const name = this.#options.servers[index]!.name;
        try {
          const response = await this.#version(server, name);
          if (response.header.status !== STATUS_OK) throw this.#statusError('healthCheck', undefined, response.header.status);
          return { server: name, healthy: true, version: response.val.toString('utf8') };
        } catch (error) {
          return { server: name, healthy: false, error: errorMessage(error) };
        }
      }),
    );
    const healthy = servers.every((s) => s.healthy);
    const details: HealthDetails = { latency_ms: performance.now() - started, backend_type: BACKEND, servers };
    if (!healthy) details.error = servers.find((s) => !s.healthy)?.error;
    return [healthy, details];
  }

  /** Waits (at most {@link boundMs}) for calls in flight, then closes every connection. Later calls reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#pending]);
    for (const server of this.#opened?.servers ?? []) server.close();
  }

  async #fetch(operation: string, key: string): Promise<Fetched | null> {
    const storedKey = this.keyFor(key);
    const response = await this.#send(operation, key, frame(OP.get, storedKey, EMPTY, EMPTY), storedKey);
    const { status } = response.header;
    if (status === STATUS_NOT_FOUND) return null;
    if (status !== STATUS_OK) throw this.#statusError(operation, key, status);
    const val = response.val;
    // A small value parsed out of a large network chunk would keep the whole chunk alive (e.g. in an L1): copy it.
    const value = val.byteLength < val.buffer.byteLength / 2 ? Buffer.from(val) : val;
    const expiresAt = response.extras.byteLength >= 4 ? response.extras.readUInt32BE(0) : 0;
    return { value, expiresAt, cas: Buffer.from(response.header.cas) };
  }

  #store(operation: string, opcode: number, key: string, value: Uint8Array, ttlSeconds: number | undefined, cas?: Buffer) {
    if (!(value instanceof Uint8Array)) throw this.#invalid(operation, key, `value must be a Uint8Array, got ${describe(value)}`);
    const limit = this.#options.maxItemSizeBytes;
    if (value.byteLength > limit) {
      throw this.#invalid(
        operation,
        key,
        `value of ${value.byteLength} bytes exceeds maxItemSizeBytes (${limit} bytes); it was not stored. ` +
          `Raise maxItemSizeBytes together with the servers' item size limit (memcached -I), or cache smaller values.`,
      );
    }
    let ttl = 0;
    if (ttlSeconds !== undefined) {
      if (typeof ttlSeconds !== 'number' || !Number.isFinite(ttlSeconds) || ttlSeconds < 0) {
        throw this.#invalid(operation, key, `ttlSeconds must be a finite number >= 0, got ${describe(ttlSeconds)}`);
      }
      // Round up so a fractional TTL never becomes 0 (= no expiry); clamp so memcached never reads it as a date.
      ttl = Math.min(Math.ceil(ttlSeconds), MEMCACHED_MAX_TTL_SECONDS);
    }
    const extras = Buffer.allocUnsafe(8);
    extras.writeUInt32BE(ttl === 0 ? 0 : Math.floor(nowMs() / 1000) + ttl, 0); // flags: absolute expiry
    extras.writeUInt32BE(ttl, 4); // memcached's own (relative) expiry
    const storedKey = this.keyFor(key);
    const body = Buffer.from(value.buffer, value.byteOffset, value.byteLength); // a view: frame() copies it once
    return this.#send(operation, key, frame(opcode, storedKey, extras, body, cas), storedKey);
  }

  /** Sends one request through memjs (server chosen by key) and waits for its reply within the deadline. */
  #send(operation: string, key: string, request: Buffer, storedKey: string): Promise<memjs.Response> {
    return this.#withClient(operation, key, (client, admitted) => {
      const server = client.server(storedKey);
      const name = server ? `${server.host}:${server.port}` : 'no server';
      return this.#track(client, admitted, operation, key, name, request, (seq, done) => client.perform(storedKey, request, seq, done));
    });
  }

  /**
   * Runs `call` on the client, creating it first if needed. A call waiting for that counts as in flight: close()
   * waits for it (`admitted`: it was accepted before close).
   */
  #withClient<T>(operation: string, key: string | undefined, call: (client: memjs.Client, admitted: boolean) => Promise<T>): Promise<T> {
    if (this.#opened) return call(this.#opened.client, false);
    if (this.#closed) return Promise.reject(new BackendError(`${operation} after close()`, { kind: 'permanent', backend: BACKEND, operation, key }));
    const promise = this.#connect().then(({ client }) => call(client, true));
    this.#pending.add(promise);
    const forget = () => this.#pending.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  #version(server: BoundedServer, name: string): Promise<memjs.Response> {
    const request = frame(OP.version, '', EMPTY, EMPTY);
    return this.#withClient('healthCheck', undefined, (client, admitted) =>
      this.#track(client, admitted, 'healthCheck', undefined, name, request, (seq, done) => {
        server.onResponse(seq, (response) => done(null, response));
        server.onError(seq, (error) => done(error));
        server.write(request);
      }),
    );
  }

  #track(
    client: memjs.Client,
    admitted: boolean,
    operation: string,
    key: string | undefined,
    server: string,
    request: Buffer,
    start: (seq: number, done: (error: unknown, response?: memjs.Response) => void) => void,
  ): Promise<memjs.Response> {
    if (this.#closed && !admitted) {
      return Promise.reject(new BackendError(`${operation} after close()`, { kind: 'permanent', backend: BACKEND, operation, key }));
    }
    client.incrSeq();
    const seq = client.seq;
    request.writeUInt32BE(seq, 12); // the opaque field pairs the reply with this request
    const promise = new Promise<memjs.Response>((resolve, reject) => {
      let settled = false;
      const finish = (error: unknown, response?: memjs.Response) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (response && !error) resolve(response);
        else reject(BackendError.is(error) ? error : this.#fault(operation, key, server, error));
      };
      // Safety net: memjs bounds connects and replies itself, but a call must never outlive its bound.
      const timer = setTimeout(() => {
        finish(
          new BackendError(`${operation} got no answer from ${server} within ${this.boundMs} ms`, {
            kind: 'timeout',
            backend: BACKEND,
            operation,
            key,
          }),
        );
      }, this.boundMs);
      try {
        start(seq, (error, response) => finish(error ?? (response ? null : new Error('empty reply')), response));
      } catch (error) {
        finish(error);
      }
    });
    this.#pending.add(promise);
    const forget = () => this.#pending.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  #fault(operation: string, key: string | undefined, server: string, error: unknown): BackendError {
    const message = errorMessage(error);
    const code = codeOf(error);
    const detail = code !== undefined && !message.includes(code) ? `${code} ${message}` : message;
    return new BackendError(`${operation} failed on ${server}: ${detail}`, { kind: faultKind(error), backend: BACKEND, operation, key, cause: error });
  }

  #statusError(operation: string, key: string | undefined, status: number, valueBytes?: number): BackendError {
    if (status === STATUS_TOO_LARGE) {
      const size = valueBytes === undefined ? 'the value' : `a value of ${valueBytes} bytes`;
      return new BackendError(
        `the server refused ${size} as too large (its item size limit, memcached -I, is below maxItemSizeBytes ` +
          `${this.#options.maxItemSizeBytes}); it was not stored`,
        { kind: 'permanent', backend: BACKEND, operation, key },
      );
    }
    return new BackendError(`${operation}: server replied "${statusName(status)}"`, { kind: statusKind(status), backend: BACKEND, operation, key });
  }

  #invalid(operation: string, key: string, message: string): BackendError {
    return operationError(BACKEND, 'permanent', operation, key, message);
  }
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

function resolveOptions(options: MemcachedBackendOptions, env: NodeJS.ProcessEnv): ResolvedOptions {
  assertKnownOptions(COMPONENT, options, KNOWN_OPTIONS);
  const rawServers = options.servers !== undefined ? options.servers : envServers(env);
  const servers = parseServers(
    options.servers !== undefined ? COMPONENT : 'environment',
    options.servers !== undefined ? 'servers' : 'CACHEKIT_MEMCACHED_SERVERS',
    rawServers ?? ['127.0.0.1:11211'],
  );
  const keyPrefix =
    options.keyPrefix !== undefined
      ? checkPrefix(COMPONENT, 'keyPrefix', stringOption(COMPONENT, 'keyPrefix', options.keyPrefix, ''))
      : checkPrefix('environment', 'CACHEKIT_MEMCACHED_KEY_PREFIX', env.CACHEKIT_MEMCACHED_KEY_PREFIX ?? '');
  const ms = { min: 1, max: 3_600_000 };
  return {
    servers,
    keyPrefix,
    timeoutMs: optionOrEnv('timeoutMs', options.timeoutMs, env, 'CACHEKIT_MEMCACHED_TIMEOUT', 1000, 1000, ms),
    connectTimeoutMs: optionOrEnv('connectTimeoutMs', options.connectTimeoutMs, env, 'CACHEKIT_MEMCACHED_CONNECT_TIMEOUT', 1000, 2000, ms),
    maxItemSizeBytes: optionOrEnv('maxItemSizeBytes', options.maxItemSizeBytes, env, 'CACHEKIT_MEMCACHED_MAX_ITEM_SIZE_BYTES', 1, 1_048_576, {
      min: 1,
      max: 1024 * 1024 * 1024, // memcached's own ceiling for -I
      integer: true,
    }),
  };
}

/** The explicit option, else the environment variable times `scale` (seconds -> ms), else the default. */
function optionOrEnv(
  option: string,
  value: unknown,
  env: NodeJS.ProcessEnv,
  variable: string,
  scale: number,
  fallback: number,
  rule: { min: number; max: number; integer?: boolean },
): number {
  if (value !== undefined) return numberOption(COMPONENT, option, value, fallback, rule);
  // Checked in the variable's own unit, so the message quotes what the user wrote.
  const fromEnv = envNumberOption(variable, env, { ...rule, min: rule.min / scale, max: rule.max / scale });
  return fromEnv === undefined ? fallback : fromEnv * scale;
}

function envServers(env: NodeJS.ProcessEnv): string[] | undefined {
  const raw = env.CACHEKIT_MEMCACHED_SERVERS?.trim();
  if (!raw) return undefined;
  if (!raw.startsWith('[')) return raw.split(',').map((s) => s.trim());
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    throw new ConfigError('environment', 'CACHEKIT_MEMCACHED_SERVERS', `is not a valid JSON list (${(error as Error).message})`);
  }
  if (!Array.isArray(parsed) || !parsed.every((s) => typeof s === 'string')) {
    throw new ConfigError('environment', 'CACHEKIT_MEMCACHED_SERVERS', 'must be a JSON list of "host:port" strings');
  }
  return parsed.map((s: string) => s.trim());
}

function parseServers(component: string, option: string, value: unknown): ServerAddress[] {
  if (!Array.isArray(value)) throw new ConfigError(component, option, `must be a list of "host:port" strings, got ${describe(value)}`);
  if (value.length === 0) throw new ConfigError(component, option, 'must list at least one "host:port"');
  const seen = new Set<string>();
  return value.map((entry: unknown) => {
    const match = typeof entry === 'string' ? /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/@]+)):(\d{1,5})$/.exec(entry) : null;
    const port = match ? Number(match[3]) : 0;
    if (!match || port < 1 || port > 65535) {
      throw new ConfigError(component, option, `must list servers as "host:port" (port 1-65535), got ${describe(entry)}`);
    }
    const host = (match[1] ?? match[2])!;
    const key = `${host.toLowerCase()}:${port}`;
    if (seen.has(key)) throw new ConfigError(component, option, `lists ${describe(entry)} twice`);
    seen.add(key);
    return { host, port, name: entry as string };
  });
}

function checkPrefix(component: string, option: string, prefix: string): string {
  if (FORBIDDEN_KEY_CHARS.test(prefix) || LONE_SURROGATE.test(prefix)) {
    throw new ConfigError(component, option, `must not contain spaces or control characters, got ${describe(prefix)}`);
  }
  if (Buffer.byteLength(prefix) > MAX_PREFIX_BYTES) {
    throw new ConfigError(
      component,
      option,
      `must be at most ${MAX_PREFIX_BYTES} UTF-8 bytes (memcached keys are limited to 250), got ${Buffer.byteLength(prefix)}`,
    );
  }
  return prefix;
}
