/**
 * Runs `file-worker.ts` in separate Node processes: bundles it (with the FileBackend source) into one .mjs with
 * esbuild, since Node 20 cannot import TypeScript and the test must exercise the real module, not a copy.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { WorkerTask } from './file-worker.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Bundles the worker into `outDir` and returns the script path. */
export async function bundleWorker(outDir: string): Promise<string> {
  const outfile = path.join(outDir, 'file-worker.mjs');
  await build({
    entryPoints: [path.join(here, 'file-worker.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'silent',
  });
  return outfile;
}

/** Runs one worker task to completion and returns its parsed JSON result (rejects on a non-zero exit). */
export function runWorker<T>(script: string, task: WorkerTask, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, JSON.stringify(task)], {
      env: { ...process.env, CACHEKIT_FILE_WORKER: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`worker ${task.mode} exited with ${code}: ${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim()) as T);
      } catch (error) {
        reject(new Error(`worker ${task.mode} printed no JSON: ${stdout} ${stderr}`, { cause: error }));
      }
    });
  });
}
