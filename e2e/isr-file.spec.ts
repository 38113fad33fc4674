import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from '@playwright/test';
import { sharedCacheScenarios } from './support/scenarios.js';

// Two instances on one machine sharing one File backend directory (no messages: the invalidation epoch, read per request).
const dir = mkdtempSync(path.join(os.tmpdir(), 'ck-e2e-file-'));
test.describe.configure({ mode: 'serial' });
test.afterAll(() => rmSync(dir, { recursive: true, force: true }));

sharedCacheScenarios('file', () => ({ env: { CACHEKIT_FILE_CACHE_DIR: dir }, coherenceWaitMs: 150 }));
