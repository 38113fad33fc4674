import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { startNext } from './support/apps.js';
import { sharedCacheScenarios, snapshot } from './support/scenarios.js';

// Two instances sharing one File directory with every entry encrypted (the handlers' `encryption` option, set the
// way a deployment without withCachekit sets it: CACHEKIT_NEXT_OPTIONS and CACHEKIT_MASTER_KEY). The scenarios must
// behave exactly as unencrypted, and nothing on disk may hold a page in clear.
const dir = mkdtempSync(path.join(os.tmpdir(), 'ck-e2e-enc-'));
const masterKey = randomBytes(32).toString('hex');
const env = (key: string) => ({ CACHEKIT_FILE_CACHE_DIR: dir, CACHEKIT_MASTER_KEY: key, CACHEKIT_NEXT_OPTIONS: JSON.stringify({ encryption: true }) });
test.describe.configure({ mode: 'serial' });
test.afterAll(() => rmSync(dir, { recursive: true, force: true }));

const { a } = sharedCacheScenarios('file, encrypted', () => ({ env: env(masterKey), coherenceWaitMs: 1_100 }), { staleTagEvents: false });

function storedFiles(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath, entry.name));
}

test('file, encrypted: the store holds no page, RSC payload or fetch body in clear', async ({ request }) => {
  const page = await (await request.get(`${a().url}/isr`)).text();
  const renderId = page.match(/id="render-id">([^<]*)</)?.[1];
  expect(renderId).toBeTruthy();
  const files = storedFiles(dir).filter((file) => statSync(file).size > 200);
  expect(files.length).toBeGreaterThan(2);
  for (const file of files) {
    const bytes = readFileSync(file);
    expect(bytes.includes(Buffer.from(renderId!)), file).toBe(false);
    expect(bytes.includes(Buffer.from('render-id')), file).toBe(false);
    // The invalidation journal (read-your-own-writes without messages) names changed keys and tags, never content:
    // key and tag names are in clear in every shared store (Redis keys, tag keys), only values are encrypted.
    const json = bytes.indexOf('{"n":');
    if (json >= 0) {
      const entry = JSON.parse(bytes.subarray(json).toString('utf8')) as Record<string, unknown>;
      expect(
        Object.keys(entry).every((field) => ['n', 'o', 'k', 't'].includes(field)),
        file,
      ).toBe(true);
      continue;
    }
    // Each entry is an encrypted frame: magic "cE", version 1.
    expect(bytes.includes(Buffer.from([0x63, 0x45, 0x01])), file).toBe(true);
  }
});

test('file, encrypted: an instance with another master key renders anew and never fails a request', async ({ request }) => {
  const stranger = await startNext('isr-app', {
    distDir: process.env.E2E_BUILD_A!,
    env: { DATA_URL: process.env.E2E_DATA_URL!, ...env(randomBytes(32).toString('hex')) },
  });
  try {
    const known = await snapshot(request, `${a().url}/isr`);
    const other = await snapshot(request, `${stranger.url}/isr`);
    expect(other.renderId).not.toBe(known.renderId);
  } finally {
    await stranger.stop();
  }
});
