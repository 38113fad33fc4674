/**
 * The Redis connection layer under RedisBackend: the per-process registry of reference-counted connection sets
 * (shared by every backend with the same configuration, and by every copy of this module), client and subscriber
 * creation, the reconnect strategy, bounded first connects, the subscriber's liveness ping, and the mapping of
 * ioredis errors onto BackendError kinds.
 */
import { createHash } from 'node:crypto';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { Cluster, Redis, ClusterOptions, RedisOptions } from 'ioredis';
import { codeOf, wrapError } from './support.js';
import type { BackendError, BackendErrorKind, MessageHandler } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';
import { randomFraction } from '../shared/random.js';
import { objectId } from '../shared/identity.js';
import { singleton } from '../shared/registry.js';

export const BACKEND_TYPE = 'redis';

export type RedisMode = 'standalone' | 'cluster' | 'sentinel';

export interface Endpoint {
  host: string;
  port: number;
}

/** Everything that identifies a connection set. Two backends with equal configs share one. */
export interface ConnectionConfig {
  mode: RedisMode;
  /** standalone: one; cluster: startup nodes; sentinel: the sentinels. */
  endpoints: Endpoint[];
  name: string | undefined;
  sentinelPassword: string | undefined;
  username: string | undefined;
  password: string | undefined;
  db: number;
  tls: TlsConnectionOptions | undefined;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  maxReconnectDelayMs: number;
}

// ---------------------------------------------------------------------------------------------
// Connection identity
// ---------------------------------------------------------------------------------------------

function canonical(value: unknown): unknown {
  if (value === null || typeof value !== 'object') {
    // Functions in tls options: equal only when identical, numbered alike in every copy of the package.
    if (typeof value === 'function') return `[function${objectId(value)}]`;
    return value;
  }
  if (ArrayBuffer.isView(value)) return `[bytes:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}]`;
  if (Array.isArray(value)) return value.map(canonical);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) {
    const item = (value as Record<string, unknown>)[key];
    if (item !== undefined) out[key] = canonical(item);
  }
  return out;
}

/** The registry key: a hash, so that passwords never sit in plain text in a map key or a heap dump's strings. */
function connectionKey(config: ConnectionConfig): string {
  // `v1` changes whenever SharedRedisConnection's shape does, so two incompatible copies never share an entry.
  return `v1:${createHash('sha256')
    .update(JSON.stringify(canonical(config)))
    .digest('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/** Lua: delete the lock only if it still holds our token (compare-and-delete). */
const RELEASE_LOCK_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export type Client = Redis | Cluster;

/** Sockets corked until the current burst of microtasks is over. */
const corked = new WeakSet<object>();

/**
 * Commands sent during one burst of microtasks leave in one socket write. ioredis writes each command as it is sent;
 * on loopback and on a busy host every write is a system call that also wakes the server (~40-50 µs each in a cold
 * read's profile), and a cold read sends two or three at once: the entry, its TTL, its tags' states. The socket is
 * corked at the first command and uncorked once the microtasks queued meanwhile have run (`process.nextTick` runs after
 * them), so Node hands them to the kernel in one writev. Nothing waits on I/O or a timer. A Cluster groups its
 * commands itself (auto-pipelining); its node connections are left alone.
 */
export function coalesceWrites(client: Client): void {
  const stream = (client as Partial<Redis>).stream;
  if (!stream || corked.has(stream) || typeof stream.cork !== 'function') return;
  corked.add(stream);
  stream.cork();
  process.nextTick(() => {
    corked.delete(stream);
    stream.uncork();
  });
}

/** The Lua commands defined on every client (ioredis adds them at runtime). */
export interface ScriptCommands {
  cachekitReleaseLock(key: Buffer, token: string): Promise<number>;
}

function backoff(config: ConnectionConfig): (times: number) => number {
  // Never returns null: giving up would leave the cache dead until the process restarts.
  return (times) => Math.min(50 * 2 ** Math.min(times - 1, 16), config.maxReconnectDelayMs) + Math.floor(randomFraction() * 50);
}

/** Options shared by every connection to a Redis server (a standalone server, a cluster node, a master). */
function serverOptions(config: ConnectionConfig): RedisOptions {
  return {
    username: config.username,
    password: config.password,
    tls: config.tls,
    connectTimeout: config.connectTimeoutMs,
    commandTimeout: config.commandTimeoutMs,
    // No byte back for a command timeout plus a connect timeout: the socket is presumed dead (half-open TCP after a
    // network partition would otherwise survive until keepalive gives up, minutes later) and is replaced.
    socketTimeout: config.commandTimeoutMs + config.connectTimeoutMs,
    // One transparent resend after a dropped connection; beyond that, fail rather than queue.
    maxRetriesPerRequest: 1,
    connectionName: 'cachekit-next',
  };
}

function defineScripts(client: Client): void {
  client.defineCommand('cachekitReleaseLock', { numberOfKeys: 1, lua: RELEASE_LOCK_LUA });
}

function createClient({ Cluster, Redis }: IoRedis, config: ConnectionConfig): Client {
  let client: Client;
  if (config.mode === 'cluster') {
    const clusterOptions: ClusterOptions = {
      enableOfflineQueue: false,
      // Groups concurrent single-key commands into one pipeline per node: getMany/setMany never span slots in one
      // command, yet cost one round trip per node.
      enableAutoPipelining: true,
      clusterRetryStrategy: backoff(config),
      slotsRefreshTimeout: config.commandTimeoutMs,
      redisOptions: serverOptions(config),
    };
    client = new Cluster(config.endpoints, clusterOptions);
  } else {
    const options: RedisOptions = {
      ...serverOptions(config),
      db: config.db,
      lazyConnect: false,
      enableOfflineQueue: false,
      retryStrategy: backoff(config),
    };
    if (config.mode === 'sentinel') {
      Object.assign(options, {
        sentinels: config.endpoints,
        name: config.name,
        sentinelPassword: config.sentinelPassword,
        sentinelCommandTimeout: config.commandTimeoutMs,
        // While every sentinel is unreachable ioredis loops inside connect; keep it going, capped.
        sentinelRetryStrategy: backoff(config),
        enableTLSForSentinelMode: config.tls !== undefined,
      } satisfies RedisOptions);
    } else {
      Object.assign(options, config.endpoints[0]);
    }
    client = new Redis(options);
  }
  defineScripts(client);
  return client;
}

/** Error codes of the connection layer (codes, not classes: the layer may come from another copy of this module). */
const NOT_CONNECTED = 'CACHEKIT_REDIS_NOT_CONNECTED';
const CONNECT_TIMEOUT = 'CACHEKIT_REDIS_CONNECT_TIMEOUT';

function codedError(code: string, message: string, cause?: unknown): Error {
  const error = new Error(message, cause === undefined ? undefined : { cause });
  (error as Error & { code: string }).code = code;
  return error;
}

/**
 * One ioredis client and what we know about its connection: whether the first connect has had its outcome, the
 * last connection error (kept to explain fail-fast errors), and how many times it became ready.
 */
class Link {
  readonly client: Client;
  readyCount = 0;
  lastError: Error | undefined;
  #firstSettled = false;
  #deadline: number;
  #first: Promise<void> | undefined;
  #settleFirst: ((error?: Error) => void) | undefined;
  readonly #connectTimeoutMs: number;

  constructor(client: Client, connectTimeoutMs: number) {
    this.client = client;
    this.#connectTimeoutMs = connectTimeoutMs;
    this.#deadline = nowMs() + connectTimeoutMs;
    client.on('ready', () => {
      this.readyCount++;
      this.lastError = undefined;
      this.#finishFirst();
    });
    const onError = (error: unknown) => {
      // Recorded, not dropped: it explains the fail-fast errors callers get until the next successful connect.
      if (this.client.status !== 'ready') this.lastError = error instanceof Error ? error : new Error(String(error));
      this.#finishFirst(this.lastError);
    };
    client.on('error', onError);
    client.on('node error', onError);
    client.on('close', () => this.#finishFirst(this.lastError ?? codedError(NOT_CONNECTED, 'connection closed before it was ready')));
  }

  get connected(): boolean {
    return this.client.status === 'ready';
  }

  #finishFirst(error?: Error): void {
    if (this.#firstSettled) return;
    this.#firstSettled = true;
    this.#settleFirst?.(error);
  }

  /**
   * `undefined` when commands can be sent now. Otherwise a promise: the first connect is awaited (at most
   * connectTimeoutMs after the client was created); after that, a down connection rejects at once.
   */
  ready(): Promise<void> | undefined {
    if (this.client.status === 'ready') return undefined;
    if (!this.#firstSettled && nowMs() < this.#deadline) {
      this.#first ??= new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.#firstSettled = true;
          reject(codedError(CONNECT_TIMEOUT, `no connection within connectTimeoutMs (${this.#connectTimeoutMs} ms)`, this.lastError));
        }, this.#deadline - nowMs());
        this.#settleFirst = (error) => {
          clearTimeout(timer);
          if (error) reject(error);
          else resolve();
        };
      });
      return this.#first;
    }
    this.#firstSettled = true;
    return Promise.reject(
      codedError(NOT_CONNECTED, `not connected (${this.client.status})${this.lastError ? `: ${this.lastError.message}` : ''}`, this.lastError),
    );
  }
}

/** A registered pub/sub listener. */
export interface Listener {
  onMessage: MessageHandler;
  onResync: () => void;
}

/** One subscribed channel: its listeners, and the SUBSCRIBE they all depend on. */
interface ChannelState {
  listeners: Set<Listener>;
  subscribed: Promise<void>;
}

/**
 * The lazily created pub/sub connection: SUBSCRIBEs each channel once, dispatches every message to all the
 * channel's listeners, and after every re-established connection (not the first) subscribes again and then calls
 * every `onResync`, because messages may have been missed meanwhile.
 */
class SubscriberConnection {
  readonly link: Link;
  readonly channels = new Map<string, ChannelState>();
  readonly #ping: NodeJS.Timeout;

  /**
   * `pingIntervalMs`: how often the otherwise idle connection is probed, so that a silently dead one (half-open TCP,
   * frozen server) is replaced and resynced instead of missing messages unnoticed.
   */
  constructor(client: Redis, connectTimeoutMs: number, pingIntervalMs: number) {
    this.link = new Link(client, connectTimeoutMs);
    client.on('message', (channel: string, message: string) => {
      for (const listener of this.channels.get(channel)?.listeners ?? []) invoke(() => listener.onMessage(message));
    });
    client.on('ready', () => {
      if (this.link.readyCount > 1) void this.#resync(client);
    });
    this.#ping = setInterval(() => {
      if (client.status !== 'ready') return;
      client.ping().catch(() => {
        // An unanswered ping on an idle subscriber means it is dead: reconnect (which resyncs) instead of waiting.
        if (client.status === 'ready') client.disconnect(true);
      });
    }, pingIntervalMs);
    this.#ping.unref();
  }

  get client(): Redis {
    return this.link.client as Redis;
  }

  async #resync(client: Redis): Promise<void> {
    const channels = [...this.channels.keys()];
    try {
      if (channels.length > 0) await client.subscribe(...channels);
    } catch {
      // Not resubscribed: force another reconnect, whose 'ready' retries this; resyncing now would claim a coverage
      // we do not have.
      if (client.status === 'ready') client.disconnect(true);
      return;
    }
    for (const { listeners } of this.channels.values()) for (const listener of listeners) invoke(listener.onResync);
  }

  async #subscribe(channel: string): Promise<void> {
    const pending = this.link.ready();
    if (pending) await pending;
    await this.client.subscribe(channel);
  }

  /** Resolves once `channel` is subscribed server-side; every listener added meanwhile shares that outcome. */
  async add(channel: string, listener: Listener): Promise<void> {
    let state = this.channels.get(channel);
    if (!state) {
      const created: ChannelState = { listeners: new Set(), subscribed: this.#subscribe(channel) };
      created.subscribed.catch(() => {
        if (this.channels.get(channel) === created) this.channels.delete(channel);
      });
      this.channels.set(channel, created);
      state = created;
    }
    state.listeners.add(listener);
    try {
      await state.subscribed;
    } catch (error) {
      state.listeners.delete(listener);
      throw error;
    }
  }

  async remove(channel: string, listener: Listener): Promise<void> {
    const state = this.channels.get(channel);
    if (!state?.listeners.delete(listener) || state.listeners.size > 0) return;
    this.channels.delete(channel);
    if (!this.link.connected) return; // nothing is subscribed server-side, and a reconnect will not resubscribe it
    try {
      await this.client.unsubscribe(channel);
    } catch {
      // Harmless if it fails: the channel is out of the map, so its messages reach no one and a reconnect drops it.
    }
  }

  close(): void {
    clearInterval(this.#ping);
    this.client.disconnect();
  }
}

/** Calls a user callback without letting its exception break the dispatch to the others. */
function invoke(callback: () => void): void {
  try {
    callback();
  } catch (error) {
    process.emitWarning(`[cachekit] [redis] a pub/sub handler threw: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`, {
      code: 'CACHEKIT_REDIS_HANDLER_ERROR',
    });
  }
}

/**
 * The connection set shared by every backend with the same configuration in this process: one command client
 * (created on first use) and one subscriber (created on first subscribe). Reference counted; the last release
 * closes the connections. Only public members are used from outside, because the instance in the registry may come
 * from another copy of this module (ESM and CJS side by side).
 */
export class SharedRedisConnection {
  refs = 0;
  readonly key: string;
  readonly config: ConnectionConfig;
  #main: Link | undefined;
  #subscriber: SubscriberConnection | undefined;
  #version: { readyCount: number; value: string | undefined } | undefined;

  constructor(key: string, config: ConnectionConfig) {
    this.key = key;
    this.config = config;
  }

  /** The command client, created (and ioredis imported) on first use. */
  async main(): Promise<Link> {
    if (this.#main) return this.#main;
    const ioredis = await loadIoredis();
    return (this.#main ??= new Link(createClient(ioredis, this.config), this.config.connectTimeoutMs));
  }

  /** Whether the command client exists and is ready (never creates it). */
  get connected(): boolean {
    return this.#main?.connected ?? false;
  }

  async subscriber(): Promise<SubscriberConnection> {
    if (this.#subscriber) return this.#subscriber;
    const main = await this.main();
    const ioredis = await loadIoredis();
    const { connectTimeoutMs, commandTimeoutMs } = this.config;
    // A dead subscriber is noticed within about one connect timeout plus two command timeouts (3 s by default).
    return (this.#subscriber ??= new SubscriberConnection(this.#createSubscriberClient(ioredis, main), connectTimeoutMs, connectTimeoutMs + commandTimeoutMs));
  }

  /** The server's `redis_version`, read once per (re)connection. */
  async version(): Promise<string | undefined> {
    const main = await this.main();
    if (this.#version?.readyCount === main.readyCount) return this.#version.value;
    const info = await main.client.info('server');
    const value = /^redis_version:(.+)$/m.exec(info)?.[1]?.trim();
    this.#version = { readyCount: main.readyCount, value };
    return value;
  }

  #createSubscriberClient({ Redis }: IoRedis, main: Link): Redis {
    const config = this.config;
    if (config.mode !== 'cluster') {
      return (main.client as Redis).duplicate({ autoResubscribe: false, connectionName: 'cachekit-next:sub' });
    }
    // Cluster PUBLISH reaches every node, so one plain connection to any node receives all messages. Each reconnect
    // attempt moves to the next known node, so a node that is gone for good does not take pub/sub with it.
    const candidates = (): Endpoint[] => {
      const known = (main.client as Cluster).nodes('master').map((node) => ({ host: String(node.options.host), port: Number(node.options.port) }));
      return known.length > 0 ? known : config.endpoints;
    };
    const first = candidates()[0] ?? config.endpoints[0]!;
    const retry = backoff(config);
    const client: Redis = new Redis({
      ...serverOptions(config),
      ...first,
      connectionName: 'cachekit-next:sub',
      enableOfflineQueue: false,
      autoResubscribe: false,
      retryStrategy: (times) => {
        const list = candidates();
        const next = list[times % list.length];
        if (next) Object.assign(client.options, next);
        return retry(times);
      },
    });
    return client;
  }

  /** Called by the last backend holding a reference. */
  async shutdown(): Promise<void> {
    const registry = connections();
    if (registry.get(this.key) === this) registry.delete(this.key);
    this.#subscriber?.close();
    const main = this.#main;
    if (!main) return;
    const client = main.client;
    if (client.status === 'ready') {
      // QUIT lets in-flight replies arrive; bounded, since a stalled server might never answer it.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        client.quit().catch(() => undefined), // closing anyway: a failed QUIT changes nothing
        new Promise((resolve) => (timer = setTimeout(resolve, this.config.commandTimeoutMs))),
      ]);
      clearTimeout(timer);
    }
    client.disconnect();
  }
}

/** The parts of ioredis used here. */
type IoRedis = Pick<typeof import('ioredis'), 'Redis' | 'Cluster'>;
let ioredis: Promise<IoRedis> | undefined;

/** ioredis, imported once on the first command (an app on another backend never loads it). */
function loadIoredis(): Promise<IoRedis> {
  const loading = (ioredis ??= import('ioredis'));
  loading.catch(() => (ioredis = undefined)); // a failed import is retried by the next command
  return loading;
}

function connections(): Map<string, SharedRedisConnection> {
  return singleton('redisConnections', () => new Map<string, SharedRedisConnection>());
}

/** This process's connection set for `config`, created on first use; the caller holds one reference. */
export function acquire(config: ConnectionConfig): SharedRedisConnection {
  const key = connectionKey(config);
  const registry = connections();
  let shared = registry.get(key);
  if (!shared) {
    shared = new SharedRedisConnection(key, config);
    registry.set(key, shared);
  }
  shared.refs++;
  return shared;
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

const AUTH_REPLY = /^(NOAUTH|WRONGPASS|NOPERM)\b/;
const TRANSIENT_REPLY = /^(LOADING|READONLY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|BUSY|OOM|MOVED|ASK)\b/;
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'EADDRNOTAVAIL',
  'ERR_SOCKET_CLOSED',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_WRITE_AFTER_END',
]);
/** The server failed to prove its identity: a trust problem a retry will not fix. */
const TLS_TRUST_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);
const TRANSIENT_MESSAGES = [
  "Stream isn't writeable",
  'Connection is closed',
  "Cluster isn't ready",
  'Cluster is ended',
  'None of startup nodes is available',
  'Failed to refresh slots cache',
  'All sentinels are unreachable',
  'Command aborted due to connection close',
  'Too many Cluster redirections',
];

/** Maps an ioredis (or connection layer) error onto a BackendError kind. */
function kindOf(error: unknown): BackendErrorKind {
  if (!(error instanceof Error)) return 'unknown';
  const { message, name } = error;
  const code = codeOf(error);
  if (code === NOT_CONNECTED) {
    // Down is transient, unless the reason it is down is refused credentials: then say so on every call.
    const cause = error.cause;
    return cause !== undefined && kindOf(cause) === 'authentication' ? 'authentication' : 'transient';
  }
  if (code === CONNECT_TIMEOUT) return error.cause !== undefined && kindOf(error.cause) === 'authentication' ? 'authentication' : 'timeout';
  if (name === 'ReplyError') {
    if (AUTH_REPLY.test(message)) return 'authentication';
    return TRANSIENT_REPLY.test(message) ? 'transient' : 'permanent';
  }
  if (name === 'ClusterAllFailedError') {
    const last = (error as { lastNodeError?: unknown }).lastNodeError;
    return last !== undefined && kindOf(last) === 'authentication' ? 'authentication' : 'transient';
  }
  // 'timeout' is ioredis' slots-refresh timer (cluster discovery against a silent node).
  if (message === 'Command timed out' || message === 'timeout' || message.startsWith('Socket timeout') || code === 'ETIMEDOUT') return 'timeout';
  if (typeof code === 'string' && TLS_TRUST_CODES.has(code)) return 'authentication';
  if (name === 'MaxRetriesPerRequestError' || name === 'AbortError') return 'transient';
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return 'transient';
  if (TRANSIENT_MESSAGES.some((text) => message.includes(text))) return 'transient';
  return 'unknown';
}

/** Any failure of a command (or of the connection under it) as a BackendError of the right kind. */
export function toBackendError(error: unknown, operation: string, key: string | undefined): BackendError {
  return wrapError(BACKEND_TYPE, operation, key, error, kindOf);
}
