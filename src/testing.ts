/**
 * `cachekit-next/testing`: the backend conformance suite the built-in backends pass, for authors of custom backends.
 * Runner-agnostic (pass your runner's describe/it/beforeAll/afterAll); assertions use node:assert.
 */
export { testBackendConformance, type ConformanceTarget, type Capability, type UnreachableBackend, type TestRunner } from './testing/conformance.js';
/** Forgets every process-wide singleton (default backend, logger, memoised backends, stacks, loader cores) between tests. */
export { resetForTests } from './shared/registry.js';
