/**
 * Example apps as users run them: the package packed into a tarball and installed into the app's node_modules (not a
 * symlink: Next's bundler refuses handler files outside the app root), `next build`, then `next start` processes.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../test/support/servers.js';
import { installExample, isInstalled, ROOT } from '../../scripts/install-examples.mjs';

const execFileAsync = promisify(execFile);
export { ROOT, TARBALL } from '../../scripts/install-examples.mjs';

export function appDir(name: string): string {
  return path.join(ROOT, 'examples', name);
}

const baseEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };
  // The e2e runner's own settings must not leak into the apps: each test says which backend an app uses.
  for (const name of Object.keys(env)) if (name.startsWith('CACHEKIT_') || name === 'REDIS_URL') delete env[name];
  delete env.NODE_OPTIONS;
  delete env.NEXT_DEPLOYMENT_ID;
  return env;
};

/**
 * Installs the packed package (TARBALL) with the app's other dependencies into the app. scripts/test-all.sh installed
 * every example up front (scripts/install-examples.mjs): then this only checks that the current tarball is there and
 * waits on no registry. Run alone (one spec), it installs, with npm's retry and timeout settings.
 */
export async function installApp(name: string): Promise<void> {
  const dir = appDir(name);
  if (isInstalled(dir)) return;
  await installExample(dir, baseEnv());
}

export interface BuildResult {
  distDir: string;
  buildId: string;
  durationMs: number;
  output: string;
}

/** `next build` into `distDir` with `buildId`; `env` picks the backend the build's workers use. */
export async function buildApp(name: string, options: { distDir: string; buildId: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<BuildResult> {
  const dir = appDir(name);
  const started = Date.now();
  const { stdout, stderr } = await execFileAsync(path.join(dir, 'node_modules', '.bin', 'next'), ['build'], {
    cwd: dir,
    env: { ...baseEnv(), NEXT_DIST_DIR: options.distDir, E2E_BUILD_ID: options.buildId, ...options.env },
    timeout: options.timeoutMs ?? 240_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const buildId = readFileSync(path.join(dir, options.distDir, 'BUILD_ID'), 'utf8').trim();
  return { distDir: options.distDir, buildId, durationMs: Date.now() - started, output: stdout + stderr };
}

export interface NextServer {
  url: string;
  port: number;
  /** Everything the server printed so far. */
  log(): string;
  stop(): Promise<void>;
}

/** `next start` on a free port, waiting until it answers. */
export async function startNext(name: string, options: { distDir: string; env?: NodeJS.ProcessEnv; port?: number }): Promise<NextServer> {
  const dir = appDir(name);
  const port = options.port ?? (await freePort());
  const child: ChildProcess = spawn(path.join(dir, 'node_modules', '.bin', 'next'), ['start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: dir,
    env: { ...baseEnv(), NEXT_DIST_DIR: options.distDir, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  return waitForServer(child, port, 'next start', '/');
}

/** Collects a server's output and waits until `probe` answers on `port` (30 s at most). */
async function waitForServer(child: ChildProcess, port: number, what: string, probe: string): Promise<NextServer> {
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const url = `http://127.0.0.1:${port}`;
  const stop = () =>
    new Promise<void>((resolve) => {
      const exited = child.exitCode !== null || child.signalCode !== null;
      if (!exited) child.once('exit', () => resolve());
      try {
        process.kill(-child.pid!, 'SIGKILL'); // the whole group: next start forks its server
      } catch {
        child.kill('SIGKILL');
      }
      if (exited) resolve();
    });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop(); // its forked server may still run in the group
      throw new Error(`${what} exited with ${child.exitCode}:\n${output}`);
    }
    try {
      const res = await fetch(`${url}${probe}`, { signal: AbortSignal.timeout(2_000) });
      if (res.status < 500) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${what} did not answer within 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  return { url, port, log: () => output, stop };
}

/** The app's upstream API: counts requests, so every real refetch is visible as a new `n`. */
export async function startDataServer(port?: number): Promise<{ url: string; port: number; requests(): number; stop(): Promise<void> }> {
  let n = 0;
  const server = http.createServer((_req, res) => {
    n++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ n, at: Date.now() }));
  });
  await new Promise<void>((resolve) => server.listen(port ?? 0, '127.0.0.1', resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    requests: () => n,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * Ships an `output: 'standalone'` build as a container image would hold it: `<distDir>/standalone` copied into a new
 * directory, with `<distDir>/static` and `public` beside it (what the Dockerfile copies). Returns the directory.
 */
export function shipStandalone(name: string, distDir: string, prefix: string): string {
  const app = appDir(name);
  const target = mkdtempSync(path.join(os.tmpdir(), prefix));
  cpSync(path.join(app, distDir, 'standalone'), target, { recursive: true, verbatimSymlinks: true });
  cpSync(path.join(app, distDir, 'static'), path.join(target, distDir, 'static'), { recursive: true });
  if (existsSync(path.join(app, 'public'))) cpSync(path.join(app, 'public'), path.join(target, 'public'), { recursive: true });
  return target;
}

/**
 * `node server.js` in a shipped standalone directory, with only `env` (plus PATH, PORT and HOSTNAME) in its
 * environment, as in a container: nothing of the test runner's. Waits until `probe` answers (a public file by
 * default: no page is rendered before the test asks for one).
 */
export async function startStandalone(dir: string, env: NodeJS.ProcessEnv = {}, probe = '/robots.txt'): Promise<NextServer> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['server.js'], {
    cwd: dir,
    env: { PATH: process.env.PATH, NEXT_TELEMETRY_DISABLED: '1', PORT: String(port), HOSTNAME: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  return waitForServer(child, port, 'node server.js', probe);
}
