/**
 * Memcached test helpers beside test/support/servers.ts: a memcached on a chosen port (to restart one on the same
 * address), raw text-protocol probes (`stats`, meta `mg`) that bypass the client under test, and fake servers for
 * failure modes (a black hole that counts its connections, a server that dies in the middle of a reply).
 */
import net from 'node:net';
import { freePort, startMemcached, type ServerHandle } from './servers.js';

/** A memcached listening on `port` (e.g. the port of one that was just stopped). */
export function startMemcachedAt(port: number, options: { maxItemMb?: number } = {}): Promise<ServerHandle> {
  return startMemcached({ ...options, port, memoryMb: 64 });
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
