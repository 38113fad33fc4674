import { MemoryBackend } from '../../src/backends/memory.js';
import { testBackendConformance } from './conformance.js';

testBackendConformance({ name: 'MemoryBackend', backendType: 'memory', create: () => new MemoryBackend() });
