/**
 * The memcached connection layer under MemcachedBackend: binary protocol framing and status codes, rendezvous
 * server selection, and BoundedServer, memjs's Server with its socket lifecycle fixed and its failures classified.
 */
import net from 'node:net';
import type memjs from 'memjs';
import { codeOf, errorMessage } from './support.js';
import type { BackendErrorKind } from '../protocol/backend.js';

// ---------------------------------------------------------------------------------------------
// Binary protocol
// ---------------------------------------------------------------------------------------------

// Opcodes and statuses used here.
export const OP = { get: 0x00, set: 0x01, add: 0x02, delete: 0x04, increment: 0x05, version: 0x0b } as const;
export const STATUS_OK = 0x00;
export const STATUS_NOT_FOUND = 0x01;
export const STATUS_EXISTS = 0x02;
export const STATUS_TOO_LARGE = 0x03;
const STATUS_NAMES: Record<number, string> = {
  0x04: 'invalid arguments',
  0x05: 'item not stored',
  0x06: 'incr on a non-numeric value',
  0x08: 'authentication error',
  0x20: 'authentication error',
  0x81: 'unknown command',
  0x82: 'out of memory',
  0x83: 'not supported',
  0x84: 'internal error',
  0x85: 'busy',
  0x86: 'temporary failure',
};

/** A reply status as text, for error messages. */
export function statusName(status: number): string {
  return STATUS_NAMES[status] ?? `status 0x${status.toString(16)}`;
}

/** What a failure status means for the caller (STATUS_TOO_LARGE is the backend's to explain: it knows the limit). */
export function statusKind(status: number): BackendErrorKind {
  if (status === 0x08 || status === 0x20) return 'authentication';
  if (status === 0x04 || status === 0x06 || status === 0x81 || status === 0x83) return 'permanent';
  if (status >= 0x82 && status <= 0x86) return 'transient';
  return 'unknown';
}

export const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// Requests, server selection
// ---------------------------------------------------------------------------------------------

/** A binary protocol request; the opaque field is filled in when the request is sent. */
export function frame(opcode: number, key: string, extras: Buffer, value: Buffer, cas?: Buffer): Buffer {
  const keyBytes = Buffer.from(key, 'utf8');
  const body = extras.byteLength + keyBytes.byteLength + value.byteLength;
  const request = Buffer.allocUnsafe(24 + body);
  request.fill(0, 0, 24);
  request[0] = 0x80; // request magic
  request[1] = opcode;
  request.writeUInt16BE(keyBytes.byteLength, 2);
  request[4] = extras.byteLength;
  request.writeUInt32BE(body, 8);
  if (cas) cas.copy(request, 16, 0, 8);
  extras.copy(request, 24);
  keyBytes.copy(request, 24 + extras.byteLength);
  value.copy(request, 24 + extras.byteLength + keyBytes.byteLength);
  return request;
}

function fnv1a(text: string, seed: number): number {
  let hash = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** murmur3's finaliser: spreads the bits so every server's score is an independent-looking draw. */
function mix(hash: number): number {
  let h = hash;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Rendezvous hashing over the servers named `names` (`host:port` as configured): a key goes to the server that
 * scores it highest, so adding or removing a server moves only that server's share of the keys.
 */
export function rendezvous(names: readonly string[]): (key: string) => number {
  const seeds = names.map((name) => fnv1a(name, 0x811c9dc5));
  return (key) => pickServer(key, seeds);
}

function pickServer(key: string, seeds: readonly number[]): number {
  if (seeds.length === 1) return 0;
  let best = 0;
  let bestScore = -1;
  for (let i = 0; i < seeds.length; i++) {
    const score = mix(fnv1a(key, seeds[i]!));
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Connection handling
// ---------------------------------------------------------------------------------------------

class AuthenticationFailure extends Error {}
class ReplyTimeout extends Error {}
class ConnectionLost extends Error {}

/** The kind of a failure of a request's connection: a socket error, or one of the errors BoundedServer raises. */
export function faultKind(error: unknown): BackendErrorKind {
  const message = errorMessage(error);
  const code = codeOf(error);
  if (error instanceof AuthenticationFailure) return 'authentication';
  if (error instanceof ReplyTimeout || /timed out/i.test(message)) return 'timeout';
  if (code?.startsWith('E') || error instanceof ConnectionLost || /no servers/i.test(message)) {
    return 'transient'; // refused, reset, unreachable, DNS: the server may be back on the next call
  }
  return 'unknown';
}

/** The memjs Server fields this module relies on (untyped internals of memjs 1.3). */
interface ServerState {
  host: string;
  port: number;
  username?: string;
  password?: string;
  connected: boolean;
  timeoutSet: boolean;
  connectCallbacks: ((socket: net.Socket) => void)[];
  requestTimeouts: number[];
  options: { timeout: number; conntimeout: number; keepAlive: boolean; keepAliveDelay: number };
  _socket?: net.Socket;
}

/**
 * Defines BoundedServer on the memjs module loaded on first connect (memjs is not loaded by importing this file):
 * memjs's Server with its socket lifecycle fixed. memjs 1.3 lets a late `close` of an old socket orphan the new one
 * (its requests then never get written), keeps a half-read reply across reconnects (every later reply is then
 * misparsed, so the client stays dead after the server returns), ends timed-out sockets instead of destroying them,
 * and copies its whole receive buffer on every chunk. Requests, replies and callbacks still go through memjs.
 */
function defineBoundedServer(memjs: typeof import('memjs')): typeof memjs.Server {
  return class BoundedServer extends memjs.Server {
    #chunks: Buffer[] = [];
    #buffered = 0;
    #connectTimer: NodeJS.Timeout | undefined;

    get #state(): ServerState {
      return this as unknown as ServerState;
    }

    override sock(sasl: boolean, go: (socket: net.Socket) => void): void {
      const state = this.#state;
      const current = state._socket;
      if (current) {
        if (!state.connected && !sasl) state.connectCallbacks.push(go);
        else go(current);
        return;
      }
      state.connected = false;
      const socket = net.connect({
        host: state.host,
        port: state.port,
        noDelay: true,
        keepAlive: state.options.keepAlive,
        keepAliveInitialDelay: state.options.keepAliveDelay * 1000,
      });
      state._socket = socket;
      const ready = () => {
        if (state._socket !== socket) return;
        clearTimeout(this.#connectTimer);
        state.connected = true;
        go(socket);
        const waiting = state.connectCallbacks;
        state.connectCallbacks = [];
        for (const callback of waiting) callback(socket);
      };
      socket.once('connect', () => {
        if (state._socket !== socket) return;
        if (state.username && state.password) {
          this.once('authenticated', ready);
          this.listSasl();
        } else {
          ready();
        }
      });
      socket.on('data', (chunk: Buffer) => {
        if (state._socket === socket) this.responseHandler(chunk);
      });
      // Events of a replaced socket are ignored: only the current one may fail the pending requests.
      socket.on('error', (error) => {
        if (state._socket === socket) this.error(error);
      });
      socket.on('close', () => {
        if (state._socket === socket) this.error(new ConnectionLost('connection closed by the server'));
      });
      this.#connectTimer = setTimeout(() => {
        if (state._socket === socket && !state.connected) this.error(new ReplyTimeout('socket timed out connecting to server'));
      }, state.options.conntimeout * 1000);
    }

    override write(blob: Uint8Array | string): void {
      const state = this.#state;
      const timeoutMs = Math.round(state.options.timeout * 1000);
      this.sock(false, (socket) => {
        socket.write(blob);
        state.requestTimeouts.push(memjs.Utils.timestamp() + timeoutMs);
        if (!state.timeoutSet) {
          state.timeoutSet = true;
          socket.setTimeout(timeoutMs, () => this.#checkDeadlines(socket));
        }
      });
    }

    /** Runs when the socket has been idle: fails everything pending once the oldest request is past its deadline. */
    #checkDeadlines(socket: net.Socket): void {
      const state = this.#state;
      if (state._socket !== socket) return;
      const soonest = state.requestTimeouts[0];
      if (soonest === undefined) {
        state.timeoutSet = false;
        socket.setTimeout(0);
        return;
      }
      const now = memjs.Utils.timestamp();
      if (soonest <= now) {
        this.error(new ReplyTimeout(`no reply within ${Math.round(state.options.timeout * 1000)} ms`));
        return;
      }
      socket.setTimeout(soonest - now, () => this.#checkDeadlines(socket));
    }

    /** Collects chunks and parses each reply once it is complete (one copy per reply, not one per chunk). */
    override responseHandler(chunk: Buffer): void {
      this.#chunks.push(chunk);
      this.#buffered += chunk.byteLength;
      while (this.#buffered >= 24) {
        let head = this.#chunks[0]!;
        if (head.byteLength < 24) head = this.#merge();
        if (head[0] !== 0x81) {
          this.error(new ConnectionLost(`not a memcached binary protocol reply (first byte 0x${head[0]!.toString(16)})`));
          return;
        }
        const total = 24 + head.readUInt32BE(8);
        if (this.#buffered < total) return;
        if (head.byteLength < total) head = this.#merge();
        const rest = head.subarray(total);
        if (rest.byteLength > 0) this.#chunks[0] = rest;
        else this.#chunks.shift();
        this.#buffered -= total;
        const response = memjs.Utils.parseMessage(head.subarray(0, total)) as memjs.Response | false;
        if (!response) {
          this.error(new ConnectionLost('malformed memcached reply'));
          return;
        }
        if (response.header.opcode === 0x20) this.saslAuth();
        else if (response.header.status === 0x20) this.error(new AuthenticationFailure('memcached SASL authentication failed'));
        else if (response.header.opcode === 0x21) this.emit('authenticated');
        else (this as unknown as { respond(response: memjs.Response): void }).respond(response);
      }
    }

    #merge(): Buffer {
      const merged = Buffer.concat(this.#chunks, this.#buffered);
      this.#chunks = [merged];
      return merged;
    }

    override error(error: Error): void {
      clearTimeout(this.#connectTimer);
      // Every socket change goes through here: the next connection never inherits a half-read reply.
      this.#chunks = [];
      this.#buffered = 0;
      this.removeAllListeners('authenticated');
      this.#state.connected = false;
      super.error(error); // destroys the socket, then fails every pending request of this server
    }

    override close(): void {
      if (this.#state._socket) this.error(new ConnectionLost('client closed'));
    }
  };
}

/** What callers see of a BoundedServer: memjs's Server interface. */
export type BoundedServer = memjs.Server;

let loaded: Promise<{ memjs: typeof import('memjs'); BoundedServer: typeof memjs.Server }> | undefined;

/** memjs and the BoundedServer class, imported once on first use (an app on another backend never loads memjs). */
export function loadMemjs(): Promise<{ memjs: typeof import('memjs'); BoundedServer: typeof memjs.Server }> {
  const loading = (loaded ??= import('memjs').then((mod) => {
    const memjs = ((mod as { default?: typeof import('memjs') }).default ?? mod) as typeof import('memjs');
    return { memjs, BoundedServer: defineBoundedServer(memjs) };
  }));
  loading.catch(() => (loaded = undefined)); // a failed import is retried by the next call
  return loading;
}
