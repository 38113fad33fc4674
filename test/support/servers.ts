/**
 * Real servers for the tests: redis-server (standalone and cluster), memcached, and a TCP "black hole" that accepts
 * connections and never answers. Each starts on a free loopback port and is stopped by the returned handle.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface ServerHandle {
  host: string;
  port: number;
  /** `host:port` */
  address: string;
  /** Stops the server (SIGKILL: no graceful shutdown, like a crash) and waits for it to exit. */
  stop(): Promise<void>;
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, child: ChildProcess, label: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // The port of a process killed a moment ago can take a few attempts to bind again.
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${label} exited early with code ${child.exitCode}`);
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${label} did not listen on ${port} within ${timeoutMs} ms`);
}

function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/**
 * Spawns `command` (a server that will listen on `port`), waits until the port answers, and returns a handle whose
 * `stop()` kills it and then runs `cleanup` (e.g. removing its temp dir).
 */
export async function startProcess(label: string, command: string, args: string[], port: number, cleanup?: () => Promise<void>): Promise<ServerHandle> {
  const child = track(spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const stop = async () => {
    await killAndWait(child);
    await cleanup?.();
  };
  try {
    await waitForPort(port, child, label);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${stderr}`);
  }
  return { host: '127.0.0.1', port, address: `127.0.0.1:${port}`, stop };
}

export interface RedisOptions {
  /** Extra `redis-server` arguments, e.g. `['--requirepass', 'secret']`. */
  args?: string[];
  port?: number;
}

/** A standalone redis-server with no persistence. */
export async function startRedis(options: RedisOptions = {}): Promise<ServerHandle & { url: string }> {
  const port = options.port ?? (await freePort());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ck-redis-'));
  const handle = await startProcess(
    'redis-server',
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...(options.args ?? [])],
    port,
    () => rm(dir, { recursive: true, force: true }),
  );
  return { ...handle, url: `redis://127.0.0.1:${port}` };
}

export interface ClusterHandle {
  /** `host:port` of every master. */
  nodes: string[];
  stop(): Promise<void>;
}

/** A Redis Cluster of `masters` masters (no replicas), created with `redis-cli --cluster create`. */
export async function startRedisCluster(masters = 3): Promise<ClusterHandle> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ck-cluster-'));
  const servers: ServerHandle[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      servers.push(
        await startProcess(
          'redis-server (cluster)',
          'redis-server',
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--save',
            '',
            '--appendonly',
            'no',
            '--dir',
            dir,
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            `nodes-${port}.conf`,
            '--cluster-node-timeout',
            '2000',
          ],
          port,
        ),
      );
    }
    const nodes = servers.map((s) => s.address);
    await execFileAsync('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    // Wait until every node reports the cluster as ok.
    const deadline = Date.now() + 15_000;
    for (const server of servers) {
      for (;;) {
        const { stdout } = await execFileAsync('redis-cli', ['-p', String(server.port), 'cluster', 'info']);
        if (stdout.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`cluster did not become ok:\n${stdout}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return {
      nodes,
      stop: async () => {
        await Promise.all(servers.map((s) => s.stop()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(servers.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

export interface MemcachedOptions {
  /** Largest item the server accepts, in MiB (memcached `-I`). @default 8 */
  maxItemMb?: number;
  /** Memory in MiB (memcached `-m`). @default 128 */
  memoryMb?: number;
  /** e.g. the port of one that was just stopped. @default a free port */
  port?: number;
}

export async function startMemcached(options: MemcachedOptions = {}): Promise<ServerHandle> {
  const port = options.port ?? (await freePort());
  const user = process.getuid?.() === 0 ? ['-u', 'root'] : [];
  return startProcess(
    'memcached',
    'memcached',
    ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-I', `${options.maxItemMb ?? 8}m`, '-m', String(options.memoryMb ?? 128), ...user],
    port,
  );
}

export interface Blackhole extends ServerHandle {
  /** Connections the client still holds open to this server. */
  openConnections(): number;
  /** Connections accepted since the start. */
  acceptedConnections(): number;
}

/**
 * A TCP server that accepts connections and never sends a byte: the "accepting but never answering" failure. It
 * counts connections; one counts as open until the client closes it.
 */
export async function startBlackhole(): Promise<Blackhole> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
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

/** A loopback port with nothing listening (connections are refused). */
export async function refusedAddress(): Promise<{ host: string; port: number; address: string }> {
  const port = await freePort();
  return { host: '127.0.0.1', port, address: `127.0.0.1:${port}` };
}
