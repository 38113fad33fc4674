import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packTarball } from '../../scripts/install-examples.mjs';
import { buildApp, installApp, ROOT, startDataServer } from './apps.js';

/**
 * Once per run: pack the built package, install it into the example apps like a user would, start the apps' upstream
 * API, and build each app once (isr-app: deployment "e2e-build-a"; use-cache-app: "e2e-uc-build"; cache-components-app
 * twice: "e2e-cc-build" and, with Next's own handlers, "e2e-cc-next-build"). Spec files start
 * `next start` instances of those builds.
 */
export default async function globalSetup(): Promise<() => Promise<void>> {
  if (!existsSync(path.join(ROOT, 'dist', 'handler.js')) || newestMtime(path.join(ROOT, 'src')) > statSync(path.join(ROOT, 'dist', 'handler.js')).mtimeMs) {
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  }
  // Byte-identical to the tarball scripts/test-all.sh installed up front when nothing changed: installApp then only checks.
  packTarball();
  await installApp('isr-app');
  await installApp('use-cache-app');
  await installApp('cache-components-app');

  const data = await startDataServer();
  process.env.E2E_DATA_URL = data.url;

  // Build-time caching (fetch, unstable_cache) goes to a throwaway File backend: run-time stores start empty.
  const buildCache = mkdtempSync(path.join(os.tmpdir(), 'ck-e2e-build-'));
  const build = await buildApp('isr-app', {
    distDir: '.next-e2e-a',
    buildId: 'e2e-build-a',
    env: { DATA_URL: data.url, CACHEKIT_FILE_CACHE_DIR: buildCache },
  });
  process.env.E2E_BUILD_A = build.distDir;
  console.log(`[e2e] built isr-app (${build.buildId}) in ${build.durationMs} ms`);

  // cacheComponents: 'use cache' through cacheHandlers, fetch through the legacy cacheHandler.
  const useCacheBuild = await buildApp('use-cache-app', {
    distDir: '.next-e2e-uc',
    buildId: 'e2e-uc-build',
    env: { DATA_URL: data.url, CACHEKIT_FILE_CACHE_DIR: buildCache },
  });
  process.env.E2E_USE_CACHE_BUILD = useCacheBuild.distDir;
  console.log(`[e2e] built use-cache-app (${useCacheBuild.buildId}) in ${useCacheBuild.durationMs} ms`);

  // Cache Components twice: with cachekit-next's handlers, and with Next's own default handlers (CACHE_HANDLERS=next).
  const ccBuild = await buildApp('cache-components-app', { distDir: '.next-e2e-cc', buildId: 'e2e-cc-build', env: { CACHEKIT_FILE_CACHE_DIR: buildCache } });
  process.env.E2E_CC_BUILD = ccBuild.distDir;
  const ccNextBuild = await buildApp('cache-components-app', { distDir: '.next-e2e-cc-next', buildId: 'e2e-cc-next-build', env: { CACHE_HANDLERS: 'next' } });
  process.env.E2E_CC_NEXT_BUILD = ccNextBuild.distDir;
  console.log(`[e2e] built cache-components-app twice (cachekit ${ccBuild.durationMs} ms, Next's handlers ${ccNextBuild.durationMs} ms)`);

  return async () => {
    await data.stop();
    rmSync(buildCache, { recursive: true, force: true });
  };
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
  }
  return newest;
}
