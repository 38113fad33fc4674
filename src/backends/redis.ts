/**
 * Redis L2 backend on ioredis: standalone (`url`), Redis Cluster (`nodes`) or Sentinel (`sentinels` + `name`).
 *
 * One connection set per process per connection configuration: every `new RedisBackend(sameOptions)` (Next builds
 * handlers per request and may load this module twice, as ESM and CJS) shares one client, plus one subscriber
 * connection created on the first `subscribe`. Connects and commands are bounded; when Redis is down calls fail fast
 * with a transient BackendError while the client keeps reconnecting in the background, forever, with capped backoff.
 * The connections themselves (registry, clients, reconnects, error kinds) live in redis-connection.ts.
 */
import { performance } from 'node:perf_hooks';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { ConfigError, assertKnownOptions, describe, numberOption, stringOption } from '../shared/options.js';
import {
  BACKEND_TYPE,
  acquire,
  toBackendError,
  coalesceWrites,
  type Client,
  type ConnectionConfig,
  type Endpoint,
  type Listener,
  type RedisMode,
  type ScriptCommands,
  type SharedRedisConnection,
} from './redis-connection.js';
import { errorMessage } from './support.js';
import type {
  AddCapable,
  Backend,
  BatchCapable,
  Closable,
  EntryWithTtl,
  HealthDetails,
  InvalidationCapable,
  LockCapable,
  MessageHandler,
  Subscription,
  TtlCapable,
} from '../protocol/backend.js';
import { BackendError } from '../protocol/backend.js';
import { randomUUID } from '../shared/random.js';
import { redisLockKey } from '../wire/keys.js';
import { processEnv } from '../shared/env.js';

export type { RedisMode } from './redis-connection.js';

const COMPONENT = 'RedisBackend';

/** A Redis address: `'host:port'` or `{ host, port }`. */
export type RedisAddress = string | { host: string; port: number };

export interface RedisBackendOptions {
  /**
   * `redis://[[user]:password@]host[:port][/db]`, or `rediss://...` for TLS. Exactly one of `url`, `nodes` and
   * `sentinels` is required.
   */
  url?: string;
  /** Redis Cluster startup nodes (any subset of the cluster; the rest is discovered). */
  nodes?: readonly RedisAddress[];
  /** Sentinel addresses; requires `name`. */
  sentinels?: readonly RedisAddress[];
  /** Sentinel master group name, e.g. `mymaster`. Only with `sentinels`. */
  name?: string;
  /** Password of the Sentinel processes themselves (not of the master), if they require one. */
  sentinelPassword?: string;
  /**
   * Prepended to every key (`${keyPrefix}${key}`) and every pub/sub channel, so apps sharing one Redis stay apart.
   * @default ''
   */
  keyPrefix?: string;
  /**
   * Bound on establishing a connection (TCP, TLS and the HELLO/INFO handshake), in ms. The first call after startup
   * waits at most this long; later calls never wait for a connection, they fail fast while it is down.
   * @default 2000
   */
  connectTimeoutMs?: number;
  /**
   * Bound on one command's reply, in ms. A command that gets no answer in time fails with kind `timeout`: a cache
   * read slower than this is worse than a miss.
   * @default 1000
   */
  commandTimeoutMs?: number;
  /**
   * Cap of the reconnect backoff (50 ms doubling up to this), in ms. Reconnecting never stops, so the cache comes back
   * by itself at most this long after Redis does.
   * @default 2000
   */
  maxReconnectDelayMs?: number;
  /** ACL user name (Redis 6+). Overrides the one in `url`. */
  username?: string;
  /** Password. Overrides the one in `url`. */
  password?: string;
  /** Database index (standalone and Sentinel only). Overrides the one in `url`. @default 0 */
  db?: number;
  /**
   * TLS: `true`, or Node `tls.connect` options such as `{ ca }` or `{ rejectUnauthorized: false }`. A `rediss://`
   * URL turns TLS on by itself; this then only supplies the options. With `sentinels` it applies to the master
   * connection, not to the sentinels themselves.
   * @default false (true for `rediss://`)
   */
  tls?: boolean | TlsConnectionOptions;
}

const KNOWN_OPTIONS = [
  'url',
  'nodes',
  'sentinels',
  'name',
  'sentinelPassword',
  'keyPrefix',
  'connectTimeoutMs',
  'commandTimeoutMs',
  'maxReconnectDelayMs',
  'username',
  'password',
  'db',
  'tls',
] as const;

/**
 * The full Redis key of a cache key: `${keyPrefix}${key}`. Exported so other stores on the same Redis (e.g. the tag
 * store) address exactly the keys this backend writes.
 */
export function redisKey(keyPrefix: string, key: string): string {
  return keyPrefix + key;
}

/**
 * A Redis Cluster hash tag: `{name}`. Keys that must live in one slot (so that one multi-key command or script can
 * touch them all, e.g. a tag index and its entries) must all contain the same tag, and it must be the first `{...}`
 * of the full key, keyPrefix included: use a keyPrefix without braces. A keyPrefix that is itself a hash tag puts
 * every key in a single slot (fine for small deployments, defeats sharding).
 */
export function redisHashTag(name: string): string {
  if (typeof name !== 'string' || name === '') throw new ConfigError('redisHashTag', 'name', `must be a non-empty string, got ${describe(name)}`);
  // Redis hashes the text between the first '{' and the next '}': a brace inside would change the tag.
  if (name.includes('{') || name.includes('}')) throw new ConfigError('redisHashTag', 'name', `must not contain braces, got ${describe(name)}`);
  return `{${name}}`;
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

function parseAddress(option: string, value: unknown): Endpoint {
  let host: unknown;
  let port: unknown;
  if (typeof value === 'string') {
    const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(value.trim());
    if (!match) throw new ConfigError(COMPONENT, option, `entries must be 'host:port' or { host, port }, got ${describe(value)}`);
    host = match[1];
    port = Number(match[2]);
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    ({ host, port } = value as { host?: unknown; port?: unknown });
  } else {
    throw new ConfigError(COMPONENT, option, `entries must be 'host:port' or { host, port }, got ${describe(value)}`);
  }
  if (typeof host !== 'string' || host === '') throw new ConfigError(COMPONENT, option, `entry host must be a non-empty string, got ${describe(host)}`);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(COMPONENT, option, `entry port must be an integer in 1..65535, got ${describe(port)}`);
  }
  return { host, port };
}

function parseAddresses(option: string, value: unknown): Endpoint[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new ConfigError(COMPONENT, option, `must be a non-empty array of 'host:port' or { host, port }, got ${describe(value)}`);
  }
  return value.map((entry) => parseAddress(option, entry));
}

interface ParsedUrl {
  endpoint: Endpoint;
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
  db: number | undefined;
}

/** `option` names what the URL came from (`url`, or an environment variable) for the error message. */
function parseRedisUrl(option: string, raw: unknown): ParsedUrl {
  if (typeof raw !== 'string' || raw.trim() === '') throw new ConfigError(COMPONENT, option, `must be a redis:// or rediss:// URL, got ${describe(raw)}`);
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    // URL's own message only says "Invalid URL"; ours names the option and hides any password in it.
    throw new ConfigError(COMPONENT, option, 'is not a valid URL (expected redis://host:port or rediss://host:port)');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError(COMPONENT, option, `must use the redis:// or rediss:// scheme, got ${JSON.stringify(url.protocol)}`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new ConfigError(COMPONENT, option, 'has no host');
  const port = url.port === '' ? 6379 : Number(url.port);
  let db: number | undefined;
  const path = url.pathname.replace(/^\//, '');
  if (path !== '') {
    if (!/^\d+$/.test(path)) throw new ConfigError(COMPONENT, option, `path must be a database number, got ${JSON.stringify(url.pathname)}`);
    db = Number(path);
  }
  const unsupported = [...url.searchParams.keys()];
  if (unsupported.length > 0) {
    throw new ConfigError(COMPONENT, option, `query parameters are not supported (${unsupported.join(', ')}); use the options instead`);
  }
  return {
    endpoint: { host, port },
    tls: url.protocol === 'rediss:',
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    db,
  };
}

function resolveConfig(options: RedisBackendOptions, urlOption = 'url'): ConnectionConfig {
  const given = (['url', 'nodes', 'sentinels'] as const).filter((name) => options[name] !== undefined);
  if (given.length !== 1) {
    throw new ConfigError(
      COMPONENT,
      given[1] ?? 'url',
      given.length === 0
        ? 'is required (or `nodes` for a cluster, or `sentinels` with `name`)'
        : `cannot be combined with \`${given[0]}\`: give exactly one of url, nodes, sentinels`,
    );
  }
  const username = options.username === undefined ? undefined : stringOption(COMPONENT, 'username', options.username, '');
  const password = options.password === undefined ? undefined : stringOption(COMPONENT, 'password', options.password, '');
  const dbOption = options.db === undefined ? undefined : numberOption(COMPONENT, 'db', options.db, 0, { min: 0, integer: true });
  if (
    options.tls !== undefined &&
    typeof options.tls !== 'boolean' &&
    (options.tls === null || typeof options.tls !== 'object' || Array.isArray(options.tls))
  ) {
    throw new ConfigError(COMPONENT, 'tls', `must be a boolean or tls.connect options, got ${describe(options.tls)}`);
  }
  const tlsObject = typeof options.tls === 'object' ? { ...options.tls } : undefined;
  const base = {
    name: undefined as string | undefined,
    sentinelPassword: undefined as string | undefined,
    connectTimeoutMs: numberOption(COMPONENT, 'connectTimeoutMs', options.connectTimeoutMs, 2_000, { min: 0, minInclusive: false }),
    commandTimeoutMs: numberOption(COMPONENT, 'commandTimeoutMs', options.commandTimeoutMs, 1_000, { min: 0, minInclusive: false }),
    maxReconnectDelayMs: numberOption(COMPONENT, 'maxReconnectDelayMs', options.maxReconnectDelayMs, 2_000, { min: 0, minInclusive: false }),
  };
  if (options.sentinels === undefined) {
    for (const name of ['name', 'sentinelPassword'] as const) {
      if (options[name] !== undefined) throw new ConfigError(COMPONENT, name, 'is only valid with `sentinels`');
    }
  }

  if (options.url !== undefined) {
    const parsed = parseRedisUrl(urlOption, options.url);
    if (parsed.tls && options.tls === false) throw new ConfigError(COMPONENT, 'tls', 'cannot be false with a rediss:// URL');
    const tls = parsed.tls || options.tls ? (tlsObject ?? {}) : undefined;
    return {
      ...base,
      mode: 'standalone',
      endpoints: [parsed.endpoint],
      username: username ?? parsed.username,
      password: password ?? parsed.password,
      db: dbOption ?? parsed.db ?? 0,
      tls,
    };
  }
  const tls = options.tls ? (tlsObject ?? {}) : undefined;
  if (options.nodes !== undefined) {
    if (dbOption !== undefined && dbOption !== 0) throw new ConfigError(COMPONENT, 'db', 'must be 0 with `nodes`: Redis Cluster has only database 0');
    return { ...base, mode: 'cluster', endpoints: parseAddresses('nodes', options.nodes), username, password, db: 0, tls };
  }
  const name = options.name;
  if (typeof name !== 'string' || name === '')
    throw new ConfigError(COMPONENT, 'name', `is required with \`sentinels\` (the master group name), got ${describe(name)}`);
  return {
    ...base,
    mode: 'sentinel',
    endpoints: parseAddresses('sentinels', options.sentinels),
    name,
    sentinelPassword: options.sentinelPassword === undefined ? undefined : stringOption(COMPONENT, 'sentinelPassword', options.sentinelPassword, ''),
    username,
    password,
    db: dbOption ?? 0,
    tls,
  };
}

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------

type Entry = { key: string; value: Uint8Array; ttlSeconds?: number };

/** `EX seconds` for whole seconds, `PX ms` otherwise; nothing when there is no expiry. */
function expiryArgs(ttlSeconds: number | undefined): (string | number)[] {
  if (!(typeof ttlSeconds === 'number' && ttlSeconds > 0)) return [];
  if (Number.isInteger(ttlSeconds)) return ['EX', ttlSeconds];
  return ['PX', Math.max(1, Math.ceil(ttlSeconds * 1000))];
}

/** Internal option key: which environment variable a URL came from, so its ConfigError names the variable. */
const URL_SOURCE = Symbol('cachekit.redis.urlSource');

/**
 * Redis (standalone, Cluster or Sentinel) as the L2. Values are stored as raw bytes under `${keyPrefix}${key}`.
 *
 * Constructing one is cheap and does no I/O: backends with the same connection options (keyPrefix aside) share one
 * connection set per process, opened on first use, so building one per request is fine. `close()` releases this
 * backend's share; the last one closes the connections (an open connection keeps a Node process alive).
 *
 * When Redis is unreachable, the first call waits at most `connectTimeoutMs`, later calls fail at once with a
 * `transient` BackendError (`authentication` when credentials or the server certificate were refused) while the
 * client reconnects in the background; a server that stops answering gives `timeout` after `commandTimeoutMs`.
 *
 * ```ts
 * const backend = new RedisBackend({ url: 'redis://localhost:6379', keyPrefix: 'myapp:' });
 * const cluster = new RedisBackend({ nodes: ['10.0.0.1:6379', '10.0.0.2:6379'] });
 * const sentinel = new RedisBackend({ sentinels: [{ host: '10.0.0.5', port: 26379 }], name: 'mymaster' });
 * ```
 */
export class RedisBackend implements Backend, BatchCapable, TtlCapable, LockCapable, AddCapable, InvalidationCapable, Closable {
  /** Prepended to every key and channel. */
  readonly keyPrefix: string;
  readonly mode: RedisMode;
  #shared: SharedRedisConnection | undefined;
  readonly #subscriptions = new Set<{ channel: string; listener: Listener }>();

  constructor(options: RedisBackendOptions) {
    if (options === undefined || options === null) throw new ConfigError(COMPONENT, 'url', 'is required (or `nodes`, or `sentinels` with `name`)');
    assertKnownOptions(COMPONENT, options, KNOWN_OPTIONS);
    this.keyPrefix = stringOption(COMPONENT, 'keyPrefix', options.keyPrefix, '');
    const config = resolveConfig(options, (options as { [URL_SOURCE]?: string })[URL_SOURCE]);
    this.mode = config.mode;
    this.#shared = acquire(config);
  }

  /**
   * A backend from the environment: `CACHEKIT_REDIS_URL`, else `REDIS_URL`. Explicit `options` win over the
   * environment (a `url`, `nodes` or `sentinels` given there is used instead of the variables).
   */
  static fromEnv(env: NodeJS.ProcessEnv = processEnv(), options: RedisBackendOptions = {}): RedisBackend {
    if (options.url !== undefined || options.nodes !== undefined || options.sentinels !== undefined) return new RedisBackend(options);
    for (const variable of ['CACHEKIT_REDIS_URL', 'REDIS_URL']) {
      const url = env[variable]?.trim();
      if (url) return new RedisBackend({ ...options, url, [URL_SOURCE]: variable } as RedisBackendOptions);
    }
    throw new ConfigError('environment', 'CACHEKIT_REDIS_URL', 'is not set (nor REDIS_URL): cannot configure RedisBackend');
  }

  /** The Redis key under which `key` is stored. */
  fullKey(key: string): string {
    return redisKey(this.keyPrefix, key);
  }

  /**
   * The bytes to send. On a ready standalone/sentinel connection ioredis serialises (copies) them synchronously in
   * the call, so a zero-copy view never outlives it. Cluster auto-pipelining serialises on a later tick, and a call
   * waiting for the first connect does too: then the caller could still change the bytes, so they are copied.
   * (A command resent after a dropped connection is re-serialised before its promise settles, as for any client.)
   */
  #payload(value: Uint8Array): Buffer {
    if (this.mode !== 'cluster' && this.#shared?.connected) {
      return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    }
    return Buffer.from(value);
  }

  #lockKey(key: string): Buffer {
    return redisLockKey(this.keyPrefix, key);
  }

  #sharedOrThrow(operation: string, key?: string): SharedRedisConnection {
    if (!this.#shared) throw new BackendError(`${operation} failed: the backend is closed`, { kind: 'permanent', backend: BACKEND_TYPE, operation, key });
    return this.#shared;
  }

  /** Runs `command` once the connection is usable (see Link.ready), mapping every failure to a BackendError. */
  async #run<T>(operation: string, key: string | undefined, command: (client: Client) => Promise<T>): Promise<T> {
    const shared = this.#sharedOrThrow(operation, key);
    try {
      const main = await shared.main();
      const pending = main.ready();
      if (pending) await pending;
      coalesceWrites(main.client);
      return await command(main.client);
    } catch (error) {
      throw toBackendError(error, operation, key);
    }
  }

  async get(key: string): Promise<Uint8Array | null> {
    return this.#run('get', key, (client) => client.getBuffer(this.fullKey(key)));
  }

  async set(key: string, value: Uint8Array, ttlSeconds?: number): Promise<void> {
    // Plain SET without EX also clears an earlier TTL, which is what "no expiry" must mean.
    const payload = this.#payload(value); // now, before any wait
    await this.#run('set', key, (client) => client.call('SET', this.fullKey(key), payload, ...expiryArgs(ttlSeconds)));
  }

  async add(key: string, value: Uint8Array, ttlSeconds?: number): Promise<boolean> {
    const payload = this.#payload(value);
    const reply = await this.#run('add', key, (client) => client.call('SET', this.fullKey(key), payload, 'NX', ...expiryArgs(ttlSeconds)));
    return reply !== null;
  }

  async delete(key: string): Promise<boolean> {
    return (await this.#run('delete', key, (client) => client.del(this.fullKey(key)))) > 0;
  }

  async exists(key: string): Promise<boolean> {
    return (await this.#run('exists', key, (client) => client.exists(this.fullKey(key)))) > 0;
  }

  async getMany(keys: readonly string[]): Promise<(Uint8Array | null)[]> {
    if (keys.length === 0) return [];
    const fullKeys = keys.map((key) => this.fullKey(key));
    if (this.mode === 'cluster') {
      // One GET per key: MGET across slots is a CROSSSLOT error. Auto-pipelining sends them as one batch per node.
      return this.#run('getMany', undefined, (client) => Promise.all(fullKeys.map((key) => client.getBuffer(key))));
    }
    return this.#run('getMany', undefined, (client) => client.mgetBuffer(fullKeys));
  }

  async setMany(entries: readonly Entry[]): Promise<void> {
    if (entries.length === 0) return;
    const args = entries.map(({ key, value, ttlSeconds }) => [this.fullKey(key), this.#payload(value), ...expiryArgs(ttlSeconds)] as const);
    if (this.mode === 'cluster') {
      await this.#run('setMany', undefined, (client) => Promise.all(args.map((arg) => client.call('SET', ...arg))));
      return;
    }
    await this.#run('setMany', undefined, async (client) => {
      const pipeline = client.pipeline();
      for (const arg of args) pipeline.call('SET', ...arg);
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([error]) => error);
      if (failed) throw failed[0];
    });
  }

  async getWithTtl(key: string): Promise<EntryWithTtl | null> {
    // GET and PTTL sent back to back on one connection: one round trip, in order. Not a Lua script: returning a large
    // value through Lua copies it twice (measured 2.2x slower than a plain GET at 2 MB, bench/README.md). Not an ioredis
    // pipeline either: building and settling one cost ~80 µs more than the GET itself in a fresh process (two separate
    // commands: no more than one GET). A write landing between the two commands can only pair the value with a newer
    // TTL, and that write is announced to every L1 anyway.
    const fullKey = this.fullKey(key);
    const [value, pttl] = await this.#run('getWithTtl', key, (client) => Promise.all([client.getBuffer(fullKey), client.pttl(fullKey)]));
    if (!value) return null;
    // -1: no expiry; -2: it expired between the two commands (the value is served once, never kept).
    return { value, ttlMs: pttl === -1 ? null : Math.max(0, pttl) };
  }

  async getTtl(key: string): Promise<number | null | undefined> {
    const pttl = await this.#run('getTtl', key, (client) => client.pttl(this.fullKey(key)));
    if (pttl === -2) return undefined;
    if (pttl < 0) return null;
    return Math.ceil(pttl / 1000);
  }

  async refreshTtl(key: string, ttlSeconds: number): Promise<boolean> {
    if (!(typeof ttlSeconds === 'number' && ttlSeconds > 0)) {
      throw new BackendError(`refreshTtl needs ttlSeconds > 0, got ${describe(ttlSeconds)}`, {
        kind: 'permanent',
        backend: BACKEND_TYPE,
        operation: 'refreshTtl',
        key,
      });
    }
    const fullKey = this.fullKey(key);
    const reply = await this.#run('refreshTtl', key, (client) =>
      Number.isInteger(ttlSeconds) ? client.expire(fullKey, ttlSeconds) : client.pexpire(fullKey, Math.max(1, Math.ceil(ttlSeconds * 1000))),
    );
    return reply === 1;
  }

  async acquireLock(key: string, timeoutMs: number): Promise<string | null> {
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0)) {
      throw new BackendError(`acquireLock needs timeoutMs > 0, got ${describe(timeoutMs)}`, {
        kind: 'permanent',
        backend: BACKEND_TYPE,
        operation: 'acquireLock',
        key,
      });
    }
    const token = randomUUID();
    const reply = await this.#run('acquireLock', key, (client) => client.call('SET', this.#lockKey(key), token, 'NX', 'PX', Math.ceil(timeoutMs)));
    return reply === null ? null : token;
  }

  async releaseLock(key: string, token: string): Promise<boolean> {
    const reply = await this.#run('releaseLock', key, (client) => (client as unknown as ScriptCommands).cachekitReleaseLock(this.#lockKey(key), token));
    return reply === 1;
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.#run('publish', undefined, (client) => client.publish(this.fullKey(channel), message));
  }

  async subscribe(channel: string, onMessage: MessageHandler, onResync: () => void): Promise<Subscription> {
    const shared = this.#sharedOrThrow('subscribe');
    const fullChannel = this.fullKey(channel);
    const listener: Listener = { onMessage, onResync };
    let subscriber: Awaited<ReturnType<SharedRedisConnection['subscriber']>>;
    try {
      subscriber = await shared.subscriber();
      await subscriber.add(fullChannel, listener);
    } catch (error) {
      throw toBackendError(error, 'subscribe', undefined);
    }
    const record = { channel: fullChannel, listener };
    this.#subscriptions.add(record);
    return {
      unsubscribe: async () => {
        if (!this.#subscriptions.delete(record)) return;
        await subscriber.remove(fullChannel, listener);
      },
    };
  }

  async healthCheck(): Promise<[boolean, HealthDetails]> {
    const details: HealthDetails = { latency_ms: 0, backend_type: BACKEND_TYPE, mode: this.mode };
    const started = performance.now();
    try {
      await this.#run('healthCheck', undefined, (client) => client.ping());
      details.latency_ms = Math.round((performance.now() - started) * 1000) / 1000;
    } catch (error) {
      details.latency_ms = Math.round((performance.now() - started) * 1000) / 1000;
      details.error = errorMessage(error);
      return [false, details];
    }
    try {
      const version = await this.#shared?.version();
      if (version) details.redis_version = version;
    } catch (error) {
      // PING answered, so the server is healthy; INFO may be forbidden by an ACL. Report, do not fail.
      details.redis_version_error = errorMessage(error);
    }
    return [true, details];
  }

  /** Releases this backend's reference; the last one closes the shared connections. Idempotent. */
  async close(): Promise<void> {
    const shared = this.#shared;
    if (!shared) return;
    this.#shared = undefined;
    const subscriptions = [...this.#subscriptions];
    this.#subscriptions.clear();
    await Promise.all(subscriptions.map(async ({ channel, listener }) => (await shared.subscriber()).remove(channel, listener)));
    shared.refs--;
    if (shared.refs <= 0) await shared.shutdown();
  }
}
