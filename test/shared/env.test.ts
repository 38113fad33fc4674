/**
 * The environment is read at the edges only: `process.env` appears in src/shared/env.ts alone, and only the edges
 * below call its `processEnv()` (the composition root, withCachekit, the loaders' defaults, and the `fromEnv` of the
 * backends and the Encryptor). Everything else takes values. Parsed with TypeScript: comments and strings don't count.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { coreOptions } from '../../src/loaders/options.js';
import { resetForTests } from '../../src/shared/registry.js';
import { getStack } from '../../src/stack/stack.js';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Who may call processEnv(), and why each is an edge. */
const EDGES: Record<string, string> = {
  'stack/stack.ts': 'the composition root: deployment id, build phase, dev server, L1 budget, master key',
  'stack/resolve.ts': 'backend resolution from the environment (CACHEKIT_REDIS_URL, ...)',
  'stack/backend-spec.ts': "withCachekit's backend descriptions, built with the environment's credentials",
  'stack/built-options.ts': 'applies the options built into a standalone app to CACHEKIT_NEXT_OPTIONS',
  'loaders/options.ts': "the loaders' defaults: inside Next or not, master key, L1 budget",
  'next/config.ts': 'withCachekit writes CACHEKIT_NEXT_OPTIONS for the worker processes',
  'backends/redis.ts': 'RedisBackend.fromEnv',
  'backends/file.ts': 'FileBackend.fromEnv',
  'backends/memcached.ts': 'MemcachedBackend.fromEnv and its constructor default',
  'backends/cachekitio.ts': 'CachekitIOBackend.fromEnv and its constructor default',
  'wire/encryption.ts': 'Encryptor.fromEnv',
  'observe/tracing.ts': 'CACHEKIT_TRACE_L1_HITS, read when a tracer is installed (on the first request after a provider is registered)',
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

function scan(): { readers: string[]; callers: string[] } {
  const readers = new Set<string>();
  const callers = new Set<string>();
  for (const file of sources(SRC)) {
    const rel = path.relative(SRC, file);
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isPropertyAccessExpression(node) && node.name.text === 'env' && ts.isIdentifier(node.expression) && node.expression.text === 'process') {
        readers.add(rel);
      }
      // `process['env']` and a destructured `const { env } = process` count too.
      if (ts.isElementAccessExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'process') readers.add(rel);
      if (ts.isVariableDeclaration(node) && node.initializer && ts.isIdentifier(node.initializer) && node.initializer.text === 'process') readers.add(rel);
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'processEnv') callers.add(rel);
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return { readers: [...readers].sort(), callers: [...callers].filter((file) => file !== 'shared/env.ts').sort() };
}

describe('the environment, read at the edges', () => {
  afterEach(async () => {
    vi.unstubAllEnvs();
    await resetForTests();
  });

  it('is read from process.env in src/shared/env.ts alone', () => {
    expect(scan().readers).toEqual(['shared/env.ts']);
  });

  it('reaches only the pinned edges (a new reader is a deliberate change here)', () => {
    expect(scan().callers).toEqual(Object.keys(EDGES).sort());
  });

  it('is passed down as values: the L1 budget of CACHEKIT_L1_MAX_SIZE_MB reaches handlers and loaders', async () => {
    vi.stubEnv('CACHEKIT_L1_MAX_SIZE_MB', String(1000 / (1024 * 1024)));
    const stack = getStack({ backend: null, namespace: 'env-test' });
    await stack.entries.set('big', {
      value: { kind: 'FETCH', data: { headers: {}, body: 'x'.repeat(2000), url: '' }, revalidate: 60 },
      lastModified: 0,
      tags: [],
    } as never);
    expect(stack.entries.hasLocal('big')).toBe(false); // over the 1000-byte budget
    await stack.entries.set('small', {
      value: { kind: 'FETCH', data: { headers: {}, body: 'x', url: '' }, revalidate: 60 },
      lastModified: 0,
      tags: [],
    } as never);
    expect(stack.entries.hasLocal('small')).toBe(true);
    expect(coreOptions({ backend: null }, 'probe').l1).toEqual({ maxSizeMb: 1000 / (1024 * 1024) });
    expect(coreOptions({ backend: null, l1: { maxSizeMb: 5 } }, 'probe').l1).toEqual({ maxSizeMb: 5 });
  });

  it('names the variable when it is not usable', async () => {
    vi.stubEnv('CACHEKIT_L1_MAX_SIZE_MB', 'lots');
    expect(() => getStack({ backend: null, namespace: 'env-test-bad' })).toThrow(/CACHEKIT_L1_MAX_SIZE_MB/);
    expect(() => coreOptions({ backend: null }, 'probe')).toThrow(/CACHEKIT_L1_MAX_SIZE_MB/);
  });
});
