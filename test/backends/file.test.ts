import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { FileBackend } from '../../src/backends/file.js';
import { testBackendConformance } from '../../src/testing.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'ck-file-conf-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

testBackendConformance(
  {
    name: 'FileBackend',
    capabilities: ['batch', 'ttl', 'add', 'locks', 'counter'],
    backendType: 'file',
    create: () => new FileBackend({ cacheDir: path.join(root, 'cache') }),
  },
  { describe, it, beforeAll, afterAll },
);
