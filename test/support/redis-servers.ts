/**
 * Redis servers the Redis backend tests need beyond test/support/servers.ts: a Sentinel, a TLS-only server, and a
 * redis-cli helper. Same habits as servers.ts: free loopback ports, temp dirs, SIGKILL on stop.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, startProcess, type ServerHandle } from './servers.js';

const execFileAsync = promisify(execFile);

/** Runs `redis-cli -p <port> ...args` and returns its trimmed stdout. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args]);
  return stdout.trim();
}

function spawnServer(label: string, args: string[], port: number, dir: string): Promise<ServerHandle> {
  return startProcess(label, 'redis-server', args, port, () => rm(dir, { recursive: true, force: true }));
}

export interface SentinelHandle extends ServerHandle {
  /** The master group name the sentinel monitors. */
  name: string;
}

/** One `redis-server --sentinel` monitoring `master` under `name` (quorum 1), ready to answer for it. */
export async function startSentinel(master: { host: string; port: number }, name = 'mymaster'): Promise<SentinelHandle> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ck-sentinel-'));
  const configFile = path.join(dir, 'sentinel.conf');
  // Sentinel rewrites its config file, so it must be a writable file of its own.
  await writeFile(
    configFile,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} ${master.host} ${master.port} 1`,
      `sentinel down-after-milliseconds ${name} 5000`,
      '',
    ].join('\n'),
  );
  const handle = await spawnServer('redis sentinel', [configFile, '--sentinel'], port, dir);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answer = await redisCli(port, 'sentinel', 'get-master-addr-by-name', name).catch(() => '');
    if (answer.includes(String(master.port))) break;
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`sentinel does not know master ${name}: ${answer}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { ...handle, name };
}

export interface TlsRedisHandle extends ServerHandle {
  /** `rediss://127.0.0.1:<port>` */
  url: string;
  /** The self-signed certificate (PEM), to pass as `tls: { ca }`. */
  ca: Buffer;
}

/** A redis-server listening with TLS only (plain port disabled), with a fresh self-signed cert for 127.0.0.1. */
export async function startTlsRedis(): Promise<TlsRedisHandle> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ck-redis-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  await execFileAsync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-keyout',
    key,
    '-out',
    cert,
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  const handle = await spawnServer(
    'redis-server (tls)',
    [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--tls-cert-file',
      cert,
      '--tls-key-file',
      key,
      '--tls-ca-cert-file',
      cert,
      '--tls-auth-clients',
      'no',
    ],
    port,
    dir,
  );
  return { ...handle, url: `rediss://127.0.0.1:${port}`, ca: await readFile(cert) };
}
