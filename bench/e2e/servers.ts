/**
 * The bench apps as users run them: the packed tarball installed like the e2e apps (scripts/install-examples.mjs),
 * one `next build` per app (kept while the app and the tarball do not change), and `next start` processes whose CPU
 * time and RSS are read from /proc for their whole process group.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../test/support/servers.js';

const execFileAsync = promisify(execFile);
/** The repository (bench/run.mjs runs every benchmark there). */
export const ROOT = process.cwd();
// Loaded at run time, not bundled: it computes its paths from its own location (and runs itself when it is the entry).
const examples: typeof import('../../scripts/install-examples.mjs') = await import(pathToFileURL(path.join(ROOT, 'scripts', 'install-examples.mjs')).href);
const { installExample, isInstalled, packTarball, TARBALL } = examples;

export function appDir(app: string): string {
  return path.join(ROOT, 'bench', 'e2e', 'apps', app);
}

const baseEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, NEXT_TELEMETRY_DISABLED: '1', NODE_ENV: 'production' };
  for (const name of Object.keys(env)) {
    if (name.startsWith('CACHEKIT_') || name.startsWith('BENCH_') || ['REDIS_URL', 'NODE_OPTIONS', 'NEXT_DEPLOYMENT_ID', 'KEY_PREFIX'].includes(name)) {
      delete env[name];
    }
  }
  return env;
};

/** Packs the built package and installs it (with the peers) into the apps: one npm install, hard links for the rest. */
export async function installApps(apps: readonly string[], log: (line: string) => void): Promise<void> {
  if (!existsSync(path.join(ROOT, 'dist', 'handler.js'))) throw new Error('dist/ is missing: npm run build first');
  packTarball();
  const [first, ...rest] = apps.map(appDir);
  if (!isInstalled(first!)) {
    log(`[e2e] npm install in ${path.relative(ROOT, first!)}`);
    await installExample(first!, baseEnv());
  }
  for (const dir of rest) {
    if (isInstalled(dir)) continue;
    rmSync(path.join(dir, 'node_modules'), { recursive: true, force: true });
    execFileSync('cp', ['-al', path.join(first!, 'node_modules'), path.join(dir, 'node_modules')]);
    if (!isInstalled(dir)) await installExample(dir, baseEnv());
  }
}

function sourceHash(dir: string): string {
  const hash = createHash('sha256').update(readFileSync(TARBALL));
  const walk = (sub: string) => {
    for (const entry of readdirSync(path.join(dir, sub), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.next')) continue;
      const rel = path.join(sub, entry.name);
      if (entry.isDirectory()) walk(rel);
      else hash.update(rel).update(readFileSync(path.join(dir, rel)));
    }
  };
  walk('');
  return hash.digest('hex');
}

/** `next build` of an app into `.next-bench`, skipped when the app's sources and the tarball are those of the last build. */
export async function buildApp(app: string, env: NodeJS.ProcessEnv): Promise<{ distDir: string; built: boolean; ms: number }> {
  const dir = appDir(app);
  const distDir = '.next-bench';
  const mark = path.join(dir, distDir, '.bench-source-sha256');
  const hash = sourceHash(dir);
  if (existsSync(mark) && readFileSync(mark, 'utf8') === hash) return { distDir, built: false, ms: 0 };
  const started = performance.now();
  await execFileAsync(path.join(dir, 'node_modules', '.bin', 'next'), ['build'], {
    cwd: dir,
    env: { ...baseEnv(), NEXT_DIST_DIR: distDir, ...env },
    timeout: 300_000,
    maxBuffer: 32 * 1024 * 1024,
  });
  writeFileSync(mark, hash);
  return { distDir, built: true, ms: performance.now() - started };
}

/** A fresh copy of a build for one contender: Next's built-in cache writes its ISR entries into the dist dir. */
export function freshDistDir(app: string, build: string, name: string): string {
  const dir = appDir(app);
  const target = `.next-run-${name}`;
  rmSync(path.join(dir, target), { recursive: true, force: true });
  cpSync(path.join(dir, build), path.join(dir, target), { recursive: true, filter: (src) => !src.includes(`${path.sep}cache${path.sep}`) });
  return target;
}

export function removeDistDir(app: string, distDir: string): void {
  rmSync(path.join(appDir(app), distDir), { recursive: true, force: true });
}

export interface Server {
  url: string;
  /** Process group id: `next start` and the server it forks. */
  pgid: number;
  log(): string;
  stop(): Promise<void>;
  /** SIGTERM to the group, and the wait for `next start` to exit (a --cpu-prof profile is written on exit). */
  terminate(): Promise<void>;
}

/** `next start` of `distDir` on a free port (`nodeArgs` for Node itself), waiting (60 s at most) until `/` answers. */
export async function startServer(app: string, distDir: string, env: NodeJS.ProcessEnv, nodeArgs: readonly string[] = []): Promise<Server> {
  const dir = appDir(app);
  const port = await freePort();
  const next = path.join(dir, 'node_modules', 'next', 'dist', 'bin', 'next');
  const child = spawn(process.execPath, [...nodeArgs, next, 'start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: dir,
    env: { ...baseEnv(), NEXT_DIST_DIR: distDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}:\n${output}`);
    try {
      const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
      if (res.status < 500) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`next start did not answer within 60 s:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const terminate = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      process.kill(-child.pid!, 'SIGTERM');
    });
  return { url, pgid: child.pid!, log: () => output, stop, terminate };
}

const CLOCK_TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim() || 100);
const PAGE_BYTES = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim() || 4096);

/** CPU time (user + system, ms) and RSS (bytes) summed over the live processes of the given process groups. */
export function groupUsage(pgids: readonly number[]): { cpuMs: number; rssBytes: number } {
  let cpuMs = 0;
  let rssBytes = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after "(comm)": state ppid pgrp ... utime is field 14, stime 15, rss 24 (1-based, comm = 2).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (!pgids.includes(Number(fields[2]))) continue;
    cpuMs += (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS;
    rssBytes += Number(fields[21]) * PAGE_BYTES;
  }
  return { cpuMs, rssBytes };
}

/** The pages' origin: answers JSON and counts requests per path, so every real regeneration is visible. */
export async function startOrigin(): Promise<{ url: string; count(path: string): number; stop(): Promise<void> }> {
  const counts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const n = (counts.get(req.url ?? '') ?? 0) + 1;
    counts.set(req.url ?? '', n);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ n }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    count: (p) => counts.get(p) ?? 0,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export function versionOf(app: string, pkg: string): string {
  const manifest = path.join(appDir(app), 'node_modules', pkg, 'package.json');
  return existsSync(manifest) ? (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version : 'not installed';
}
