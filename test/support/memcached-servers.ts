/**
 * Memcached test helpers beside test/support/servers.ts: a memcached on a chosen port (to restart one on the same
 * address), raw text-protocol probes (`stats`, meta `mg`) that bypass the client under test, and fake servers for
 * failure modes (a black hole that counts its connections, a server that dies in the middle of a reply).
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { freePort, type ServerHandle } from './servers.js';

export interface MemcachedAtOptions {
  /** memcached `-I`, in MiB. @default 8 */
  maxItemMb?: number;
}

/** A memcached listening on `port` (e.g. the port of one that was just stopped). */
export async function startMemcachedAt(port: number, options: MemcachedAtOptions = {}): Promise<ServerHandle> {
  const user = process.getuid?.() === 0 ? ['-u', 'root'] : [];
  const child = spawn(
    'memcached',
    ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-I', `${options.maxItemMb ?? 8}m`, '-m', '64', ...user],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const stop = () =>
    new Promise<void>((resolve) => {
      process.off('exit', kill);
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  const deadline = Date.now() + 10_000;
  // The port of a process killed a moment ago can take a few attempts to bind again.
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`memcached on ${port} exited with code ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`memcached did not listen on ${port}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { host: '127.0.0.1', port, address: `127.0.0.1:${port}`, stop };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Sends one text-protocol command and returns the reply once `done` matches it. */
export function textCommand(address: string, command: string, done: RegExp): Promise<string> {
  const [host, port] = splitAddress(address);
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, host);
    let reply = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply to ${JSON.stringify(command)} from ${address}: ${JSON.stringify(reply)}`));
    }, 5_000);
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (done.test(reply)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(reply);
      }
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(`${command}\r\n`);
  });
}

/** `stats` of one server, as name -> value. */
export async function memcachedStats(address: string): Promise<Record<string, string>> {
  const reply = await textCommand(address, 'stats', /^END\r\n/m);
  const stats: Record<string, string> = {};
  for (const line of reply.split('\r\n')) {
    const [tag, name, value] = line.split(' ');
    if (tag === 'STAT' && name !== undefined && value !== undefined) stats[name] = value;
  }
  return stats;
}

/**
 * The server's own remaining TTL of `storedKey` (meta get `t` flag): seconds, -1 when the item never expires,
 * `undefined` when this server does not hold the key.
 */
export async function serverTtl(address: string, storedKey: string): Promise<number | undefined> {
  const reply = await textCommand(address, `mg ${storedKey} t`, /\r\n/);
  if (reply.startsWith('EN')) return undefined;
  const match = /^HD t(-?\d+)/.exec(reply);
  if (!match) throw new Error(`unexpected meta reply ${JSON.stringify(reply)}`);
  return Number(match[1]);
}

export interface CountingBlackhole extends ServerHandle {
  /** Connections the client still holds open to this server. */
  openConnections(): number;
  /** Connections accepted since the start. */
  acceptedConnections(): number;
}

/** A server that accepts connections and never answers, counting the connections still open. */
export async function startCountingBlackhole(): Promise<CountingBlackhole> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  // A connection counts as open until the client closes it (the server closes its side on the client's FIN).
  const server = net.createServer((socket) => {
    sockets.add(socket);
    accepted++;
    socket.resume(); // drain requests: an unread buffer would hide the client's FIN
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    address: `127.0.0.1:${port}`,
    openConnections: () => sockets.size,
    acceptedConnections: () => accepted,
    stop: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A server that answers each request with the start of a binary-protocol reply (a header announcing 1000 body bytes,
 * then 10 of them) and closes the connection: a memcached dying in the middle of a reply.
 */
export async function startTruncatingServer(port?: number): Promise<ServerHandle> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', () => {
      const header = Buffer.alloc(24);
      header[0] = 0x81;
      header.writeUInt32BE(1000, 8);
      socket.end(Buffer.concat([header, Buffer.alloc(10)]));
    });
  });
  const listenPort = port ?? (await freePort());
  await new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', resolve));
  return {
    host: '127.0.0.1',
    port: listenPort,
    address: `127.0.0.1:${listenPort}`,
    stop: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function splitAddress(address: string): [string, number] {
  const index = address.lastIndexOf(':');
  return [address.slice(0, index), Number(address.slice(index + 1))];
}
