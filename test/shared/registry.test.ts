/**
 * Process-wide state goes through src/shared/registry.ts: one `globalThis` symbol, each singleton declared with its
 * reason. Parsed with TypeScript: a new `Symbol.for('cachekit...')` holder or a new module-level map elsewhere fails
 * here, and so does a singleton name used but not declared (or declared but unused).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it, vi } from 'vitest';
import { MemoryBackend } from '../../src/backends/memory.js';
import { getDefaultBackend, setDefaultBackend } from '../../src/stack/resolve.js';
import { configuredStack, getStack } from '../../src/stack/stack.js';
import { SINGLETONS, resetForTests, singleton, singletonNames } from '../../src/shared/registry.js';
import { logger, setLogger } from '../../src/shared/log.js';

const SRC = path.resolve(import.meta.dirname, '../../src');

/**
 * Module-level collections that stay per module copy, each with why that is safe. Everything else process-wide
 * goes through the registry.
 */
const LOCAL_BY_DESIGN: Record<string, string> = {
  // Node counts cork() calls: a second copy corks and uncorks a shared socket on its own, balanced.
  'backends/redis-connection.ts:corked': 'sockets corked for this burst of microtasks, uncorked by the same copy',
  'shared/async-context.ts:detached': 'a memo of detached wrappers: a second copy builds an equal wrapper',
  // Keyed by the (process-wide) CacheStack; Next loads each handler module once, so one copy holds them.
  'next/cache-handler.ts:warmStarts': 'warm start is set-if-absent: a second copy would only seed again',
  'next/cache-handler.ts:warmStarted': 'as warmStarts',
  'next/use-cache-handler.ts:pendingSets': "only the 'use cache' handler module (one copy per process) reads it",
  'observe/labels.ts:names': "a memo of backend type names (a pure function of the backend's class)",
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

interface Found {
  symbols: string[];
  collections: string[];
  singletons: string[];
}

function scan(): Found {
  const found: Found = { symbols: [], collections: [], singletons: [] };
  for (const file of sources(SRC)) {
    const rel = path.relative(SRC, file);
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
        const { expression, name } = node.expression;
        const [arg] = node.arguments;
        if (ts.isIdentifier(expression) && expression.text === 'Symbol' && name.text === 'for' && arg && ts.isStringLiteral(arg)) {
          found.symbols.push(`${rel}:${arg.text}`);
        }
      }
      if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'singleton') {
        const [arg] = node.arguments;
        if (arg && ts.isStringLiteral(arg)) found.singletons.push(arg.text);
        else if (rel !== 'shared/registry.ts') found.singletons.push(`<non-literal in ${rel}>`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
    // Module scope only: a collection created per instance or per call is not process state.
    for (const statement of source.statements) {
      if (!ts.isVariableStatement(statement)) continue;
      for (const declaration of statement.declarationList.declarations) {
        const init = declaration.initializer;
        if (!init || !ts.isNewExpression(init) || !ts.isIdentifier(init.expression)) continue;
        if (!['Map', 'Set', 'WeakMap', 'WeakSet'].includes(init.expression.text)) continue;
        const name = declaration.name.getText(source);
        // UPPER_CASE constants are fixed lookup tables (error codes, reserved names), never written after load.
        if (/^[A-Z][A-Z0-9_]*$/.test(name)) continue;
        found.collections.push(`${rel}:${name}`);
      }
    }
  }
  return found;
}

describe('the process registry', () => {
  const found = scan();

  it('is the only Symbol.for holder in src/', () => {
    // And one read of OpenTelemetry's own registration (whether the app registered a tracer provider), not a holder of ours.
    expect(found.symbols.sort()).toEqual(['observe/tracing.ts:opentelemetry.js.api.1', 'shared/registry.ts:cachekit-next.registry']);
  });

  it('declares exactly the singletons src/ uses, each with a one-line reason', () => {
    expect([...new Set(found.singletons)].sort()).toEqual(Object.keys(SINGLETONS).sort());
    for (const [name, reason] of Object.entries(SINGLETONS)) {
      expect(reason.length, name).toBeGreaterThan(20);
      expect(reason, name).not.toContain('\n');
    }
  });

  it('pins the singleton list (a new process-wide state is a deliberate change here)', () => {
    expect(Object.keys(SINGLETONS).sort()).toEqual(
      [
        'backendModules',
        'breakers',
        'cachedCores',
        'cachekitIOBackends',
        'coherenceBuses',
        'configuredOptions',
        'defaultBackend',
        'describedBackends',
        'envBackends',
        'logThrottle',
        'logger',
        'objectIds',
        'redisConnections',
        'requestGeneration',
        'stacks',
        'standaloneConfigLookedUp',
        'withCachekitOptions',
        // Observability (src/observe, shared/telemetry.ts, shared/debug-log.ts).
        'telemetry',
        'debugLog',
        'tracing',
        'stats',
        'prometheus',
      ].sort(),
    );
  });

  it('leaves only the listed module-level collections local', () => {
    expect(found.collections.sort()).toEqual(Object.keys(LOCAL_BY_DESIGN).sort());
  });

  it('is one object per process: a second lookup of a name returns the first value', () => {
    const first = singleton('requestGeneration', () => ({ n: 0 }));
    expect(singleton('requestGeneration', () => ({ n: 99 }))).toBe(first);
    expect(singletonNames()).toContain('requestGeneration');
  });

  it('finds the stack of a handler per request from a memo (no options serialised again), forgotten by a reset', async () => {
    const options = { backend: null, namespace: 'memo-test' };
    const env = { CACHEKIT_NEXT_OPTIONS: JSON.stringify({ backend: null, namespace: 'memo-env-test' }) };
    const stack = getStack(options);
    const configured = configuredStack(env);
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      for (let i = 0; i < 100; i++) {
        expect(getStack(options)).toBe(stack);
        expect(configuredStack(env)).toBe(configured);
      }
      expect(stringify).not.toHaveBeenCalled();
    } finally {
      stringify.mockRestore();
    }
    expect(getStack({ ...options })).toBe(stack); // equal options share one stack, whichever object holds them
    await resetForTests();
    expect(getStack(options)).not.toBe(stack);
    expect(configuredStack(env)).not.toBe(configured);
    await resetForTests();
  });

  it('resetForTests forgets the default backend and the logger, and closes the stacks', async () => {
    const backend = new MemoryBackend();
    setDefaultBackend(backend);
    const custom = { info: () => {}, warn: () => {} };
    setLogger(custom);
    const stack = getStack({ backend: null, namespace: 'registry-test' });
    expect(getDefaultBackend()).toBe(backend);
    expect(logger()).toBe(custom);
    expect(getStack({ backend: null, namespace: 'registry-test' })).toBe(stack);

    await resetForTests();
    expect(getDefaultBackend()).toBeUndefined();
    expect(logger()).not.toBe(custom);
    expect(getStack({ backend: null, namespace: 'registry-test' })).not.toBe(stack);
    await resetForTests();
  });
});
