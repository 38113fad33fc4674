/**
 * The HTTP layer under CachekitIOBackend: one lazily created undici Pool, and `run`, which performs one operation
 * under one deadline (`timeoutMs`) covering queueing for a connection, every attempt, every backoff pause and reading
 * the body. 429, 5xx and connection failures are retried inside it, nothing else is; every failure becomes a
 * BackendError of the right kind.
 */
import { performance } from 'node:perf_hooks';
import type { Dispatcher, Pool } from 'undici';
import { BackendError, type BackendErrorKind } from '../protocol/backend.js';
import { nowMs } from '../shared/clock.js';
import { randomFraction } from '../shared/random.js';

export const BACKEND = 'cachekitio';

const RETRY_BASE_MS = 50;
const RETRY_CAP_MS = 2_000;
const USER_AGENT = `cachekit-next (node ${process.versions.node}; undici)`;

/** Thrown into the abort signal when an operation's deadline passes. */
class DeadlineExceeded extends Error {
  override name = 'DeadlineExceeded';
}

export interface Call {
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

export type Reader<T> = (response: Dispatcher.ResponseData) => Promise<T>;

export interface HttpOptions {
  /** `https://host[:port]` of the API. */
  origin: string;
  /** Path prefix before `/v1/cache/`, without a trailing slash (often ''). */
  basePath: string;
  /** The `Authorization` header value (`Bearer <apiKey>`). */
  authorization: string;
  /** Sent as `X-CacheKit-L1-Status`. */
  l1Status: string;
  timeoutMs: number;
  maxRetries: number;
  connections: number;
}

/** The connection pool and the request/retry loop of one CachekitIOBackend. */
export class CachekitIOHttp {
  readonly #origin: string;
  readonly #basePath: string;
  readonly #authorization: string;
  readonly #l1Status: string;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;
  readonly #connections: number;
  #pool: Pool | undefined;
  #closed = false;

  constructor(options: HttpOptions) {
    this.#origin = options.origin;
    this.#basePath = options.basePath;
    this.#authorization = options.authorization;
    this.#l1Status = options.l1Status;
    this.#timeoutMs = options.timeoutMs;
    this.#maxRetries = options.maxRetries;
    this.#connections = options.connections;
  }

  /** Closes the connection pool; calls made afterwards fail with a permanent error. */
  async close(): Promise<void> {
    this.#closed = true;
    const pool = this.#pool;
    this.#pool = undefined;
    // close() lets in-flight requests finish; each is bounded by its own deadline.
    if (pool && !pool.closed) await pool.close();
  }

  async #getPool(): Promise<Pool> {
    if (this.#closed) throw new Error('the backend is closed');
    if (this.#pool) return this.#pool;
    const { Pool } = await loadUndici();
    if (this.#closed) throw new Error('the backend is closed');
    this.#pool ??= new Pool(this.#origin, {
      connections: this.#connections,
      pipelining: 1,
      // The operation deadline is the real bound; these only stop a wedged socket outliving it.
      connectTimeout: this.#timeoutMs,
      headersTimeout: this.#timeoutMs + 1_000,
      bodyTimeout: this.#timeoutMs + 1_000,
      keepAliveTimeout: 30_000,
    });
    return this.#pool;
  }

  /** One operation: attempts, classified failures and backoff, all under one deadline. */
  async run<T>(call: Call, read: Reader<T>): Promise<T> {
    const path = `${this.#basePath}/v1/cache/${call.route}`;
    const where = `${call.method} ${path}`;
    const fail = (kind: BackendErrorKind, detail: string, cause?: unknown) =>
      new BackendError(`${call.operation}: ${where} ${detail}`, { kind, backend: BACKEND, operation: call.operation, key: call.key, cause });

    const started = performance.now();
    const deadline = started + this.#timeoutMs;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DeadlineExceeded(`deadline of ${this.#timeoutMs} ms passed`)), this.#timeoutMs);
    timer.unref?.();
    const headers: Record<string, string> = {
      authorization: this.#authorization,
      'x-cachekit-l1-status': this.#l1Status,
      'user-agent': USER_AGENT,
      ...call.headers,
    };

    try {
      for (let attempt = 0; ; attempt++) {
        let failure: BackendError;
        let retryAfterMs: number | undefined;
        try {
          const res = await (await this.#getPool()).request({ path, method: call.method, headers, body: call.body, signal: controller.signal });
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
            throw fail('timeout', `did not complete within ${this.#timeoutMs} ms (attempt ${attempt + 1})`, error);
          }
          if (this.#closed) throw fail('permanent', 'failed: the backend is closed', error);
          const kind = kindOfNetworkError(error);
          failure = fail(kind, `failed: ${describeError(error)}`, error);
          if (kind !== 'transient' && kind !== 'timeout') throw failure;
        }

        // A transient failure: retry if attempts and the deadline allow.
        if (attempt >= this.#maxRetries) throw withNote(failure, `after ${attempt + 1} attempts`);
        const backoff = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** attempt);
        const delay = retryAfterMs ?? backoff / 2 + randomFraction() * (backoff / 2);
        const remaining = deadline - performance.now();
        if (delay >= remaining) {
          const why = retryAfterMs === undefined ? '' : ` (server asked to retry after ${Math.round(retryAfterMs)} ms)`;
          throw withNote(failure, `giving up after ${attempt + 1} attempts: no time left within ${this.#timeoutMs} ms${why}`);
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

/** `Retry-After` as delta-seconds or an HTTP date, in ms; `undefined` when absent or unreadable. */
function parseRetryAfter(raw: string | undefined): number | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(raw)) return Number(raw) * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs());
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
let undici: Promise<typeof import('undici')> | undefined;

/** undici, imported once on the first request (an app on another backend never loads it). */
function loadUndici(): Promise<typeof import('undici')> {
  const loading = (undici ??= import('undici'));
  loading.catch(() => (undici = undefined)); // a failed import is retried by the next request
  return loading;
}

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

/** A response header's (first) value. */
export function header(res: Dispatcher.ResponseData, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export async function readJson(res: Dispatcher.ResponseData): Promise<unknown> {
  return JSON.parse(await res.body.text()) as unknown;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
