import { MemoryBackend } from '../../src/backends/memory.js';
import { testBackendConformance } from './conformance.js';

testBackendConformance({
  name: 'MemoryBackend',
  capabilities: ['batch', 'ttl', 'locks', 'add'],
  backendType: 'memory',
  create: () => new MemoryBackend(),
});
