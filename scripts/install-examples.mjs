#!/usr/bin/env node
/**
 * Installs every example app's dependencies (examples/*), with this package as the packed tarball (.cache/
 * cachekit-next.tgz, a real copy in node_modules, not a symlink: Next's bundler refuses handler files outside the app
 * root), once, before any test: scripts/test-all.sh runs it, so no test waits on the npm registry. Each install is marked with the
 * tarball's SHA-256; the e2e support (e2e/support/apps.ts) skips an app whose mark matches and whose dependencies are
 * all there, and installs it itself only when run alone (one spec while iterating).
 *
 *   node scripts/install-examples.mjs [app ...]     (default: every app in examples/ that depends on cachekit-next)
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const TARBALL = path.join(ROOT, '.cache', 'cachekit-next.tgz');
const MARK = '.installed-tarball-sha256';

/**
 * npm's own retry and timeout settings for every registry request: a request that hangs is abandoned after a minute
 * and retried (5 times, 2 s to 60 s apart) instead of holding a test hook until it times out. `--prefer-offline`:
 * what the npm cache holds is used without asking the registry again (the apps pin their versions).
 */
export const NPM_NETWORK_FLAGS = [
  '--fetch-retries=5',
  '--fetch-retry-mintimeout=2000',
  '--fetch-retry-maxtimeout=60000',
  '--fetch-timeout=60000',
  '--prefer-offline',
];

export function exampleApps() {
  return readdirSync(path.join(ROOT, 'examples'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(ROOT, 'examples', entry.name, 'package.json')))
    .map((entry) => entry.name)
    .filter((name) => {
      const pkg = JSON.parse(readFileSync(path.join(ROOT, 'examples', name, 'package.json'), 'utf8'));
      return Boolean(pkg.dependencies?.['cachekit-next']);
    })
    .sort();
}

/** Packs the built package into .cache/cachekit-next.tgz (npm pack output is byte-identical for identical contents). */
export function packTarball() {
  mkdirSync(path.dirname(TARBALL), { recursive: true });
  rmSync(TARBALL, { force: true });
  const packed = execFileSync('npm', ['pack', '--pack-destination', '.cache', '--silent'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n').pop();
  renameSync(path.join(ROOT, '.cache', packed), TARBALL);
}

function tarballSha() {
  return createHash('sha256').update(readFileSync(TARBALL)).digest('hex');
}

/**
 * Whether `dir` has the current tarball installed (its mark) and every dependency of its package.json, at the exact
 * version where one is pinned.
 */
export function isInstalled(dir) {
  const mark = path.join(dir, 'node_modules', 'cachekit-next', MARK);
  if (!existsSync(TARBALL) || !existsSync(mark) || readFileSync(mark, 'utf8').trim() !== tarballSha()) return false;
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const [name, spec] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies })) {
    const manifest = path.join(dir, 'node_modules', name, 'package.json');
    if (!existsSync(manifest)) return false;
    if (/^\d+\.\d+\.\d+$/.test(spec) && JSON.parse(readFileSync(manifest, 'utf8')).version !== spec) return false;
  }
  return true;
}

/** `npm install` in `dir` (the tarball as a copy), then marks it with the tarball's SHA-256. */
export async function installExample(dir, env = process.env) {
  // npm keeps an installed file: dependency whose version did not change: remove it so the new tarball goes in.
  rmSync(path.join(dir, 'node_modules', 'cachekit-next'), { recursive: true, force: true });
  await execFileAsync('npm', ['install', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', ...NPM_NETWORK_FLAGS], {
    cwd: dir,
    env,
    maxBuffer: 16 * 1024 * 1024,
  });
  const installed = path.join(dir, 'node_modules', 'cachekit-next');
  if (!existsSync(path.join(installed, 'dist', 'handler.js'))) throw new Error(`cachekit-next was not installed into ${installed}`);
  writeFileSync(path.join(installed, MARK), `${tarballSha()}\n`);
}

/** The dependencies of an app as one string: apps with equal ones get equal node_modules. */
function dependencySet(dir) {
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  return JSON.stringify(Object.entries({ ...pkg.dependencies, ...pkg.devDependencies }).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * Installs `apps`: one `npm install` per distinct dependency set (two at a time), and for the other apps of a set a
 * hard-linked copy of its node_modules (`cp -al`: separate directories, shared file contents, as pnpm does), which is
 * what npm would have written there, in a second instead of half a minute and 400 MB.
 */
export async function installExamples(apps, log = console.log) {
  packTarball();
  const sets = new Map();
  for (const app of apps) {
    const dir = path.join(ROOT, 'examples', app);
    const key = dependencySet(dir);
    sets.set(key, [...(sets.get(key) ?? []), dir]);
  }
  const queue = [...sets.values()];
  const worker = async () => {
    for (let dirs = queue.shift(); dirs !== undefined; dirs = queue.shift()) {
      const source = dirs.find((dir) => isInstalled(dir)) ?? dirs[0];
      for (const dir of [source, ...dirs.filter((d) => d !== source)]) {
        const name = path.basename(dir);
        const started = performance.now();
        if (isInstalled(dir)) {
          log(`  ${name}: already installed`);
          continue;
        }
        let how = 'npm install';
        if (dir !== source) {
          rmSync(path.join(dir, 'node_modules'), { recursive: true, force: true });
          try {
            execFileSync('cp', ['-al', path.join(source, 'node_modules'), path.join(dir, 'node_modules')]);
            how = `hard links to ${path.basename(source)}`;
          } catch {
            // no cp -al (another system): a copy of its own
          }
        }
        if (!isInstalled(dir)) await installExample(dir);
        log(`  ${name}: ${how}, ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
    }
  };
  await Promise.all([worker(), worker()]);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await installExamples(process.argv.length > 2 ? process.argv.slice(2) : exampleApps());
}
