#!/usr/bin/env node
// Bundles each benchmark (TypeScript, with the library's src/ inlined) into .cache/bench/<name>.mjs with esbuild and
// runs it with plain Node, one after the other. npm packages stay external: they load from node_modules as in an app.
//
//   node bench/run.mjs                      # handler-get, revalidate-tag, staleness, cached-function
//   node bench/run.mjs handler-get          # one (or several) by name: any bench/<name>.ts
//   npm run bench -- staleness
//   npm run bench -- e2e                    # a directory bench/<name>/ runs its index.ts (not in the default set)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ALL = ['handler-get', 'revalidate-tag', 'staleness', 'cached-function'];
const names = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
const selected = names.length > 0 ? names : ALL;
const entryOf = (name) => [path.join(root, 'bench', `${name}.ts`), path.join(root, 'bench', name, 'index.ts')].find((file) => existsSync(file));
for (const name of selected) {
  if (!entryOf(name)) {
    console.error(`no benchmark bench/${name}.ts (the default set is ${ALL.join(', ')})`);
    process.exit(2);
  }
}

const outDir = path.join(root, '.cache', 'bench');
mkdirSync(outDir, { recursive: true });
await build({
  entryPoints: Object.fromEntries(selected.map((name) => [name, entryOf(name)])),
  outdir: outDir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'inline',
  logLevel: 'warning',
});

// Timings on a busy machine measure the machine. Wait (bounded) for the 1-minute load average to come down first;
// each benchmark prints the load it ran under.
const maxLoad = Number(process.env.BENCH_MAX_LOAD ?? 1.5);
const maxWaitMs = Number(process.env.BENCH_MAX_WAIT_S ?? 120) * 1000;
async function waitForQuiet() {
  const deadline = Date.now() + maxWaitMs;
  while (os.loadavg()[0] > maxLoad) {
    if (Date.now() > deadline) {
      console.error(`[bench] load average still ${os.loadavg()[0].toFixed(2)} > ${maxLoad}: running anyway; compare ratios, not absolute numbers`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 5_000));
  }
}

// Which code was measured: printed with every table.
const git = (...args) => spawnSync('git', args, { cwd: root, encoding: 'utf8' }).stdout?.trim() ?? '';
const commit = git('rev-parse', '--short', 'HEAD') || 'unknown';
const dirty = git('status', '--porcelain', '--', 'src') ? ' + uncommitted src changes' : '';

let failed = false;
for (const name of selected) {
  await waitForQuiet();
  const result = spawnSync(process.execPath, ['--expose-gc', '--enable-source-maps', path.join(outDir, `${name}.mjs`)], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, NODE_ENV: 'production', NEXT_TELEMETRY_DISABLED: '1', BENCH_COMMIT: `${commit}${dirty}` },
  });
  if (result.status !== 0) {
    console.error(`bench ${name} exited with ${result.status ?? result.signal}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
