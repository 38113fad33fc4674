import { afterAll, beforeAll, describe, it } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { testBackendConformance } from '../../src/testing.js';

testBackendConformance(
  {
    name: 'MemoryBackend',
    capabilities: ['batch', 'ttl', 'locks', 'add', 'counter'],
    backendType: 'memory',
    create: () => new MemoryBackend(),
    sameStore: (backend) => backend, // process-local: there is no other view of it
  },
  { describe, it, beforeAll, afterAll },
);
