/**
 * The layers of src/ (docs/ARCHITECTURE.md), kept by a test: every import points down, never up or sideways.
 *
 *   protocol   the Backend protocol, its capabilities, BackendError           (imports nothing of ours)
 *   shared     clock, randomness, log, options vocabulary, process registry
 *   wire       bytes: frames, envelope, MessagePack, interop, encryption, keys
 *   backends   Memory, Redis, File, Memcached, CachekitIO (each imports its client lazily)
 *   store      L1 + L2 (tiered), the L2 guard, sealing, tags, coherence       (never a concrete backend)
 *   testing    the conformance suite for backend authors
 *   stack      the composition root: options -> backend + stores; default backend resolution
 *   observe    metrics (prom-client), stats(), tracing (OpenTelemetry), health: adapters over shared/telemetry.ts
 *   loaders    cache(fn), cachedFetch                                         (never a concrete backend)
 *   next       the Next.js handlers, withCachekit, warm start                 (nothing imports it)
 *   src/*.ts   the package's entry points
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(__dirname, '../src');
// observe sits on the stack (it reads its caches and backend) and under every caller it instruments (loaders, next).
const RANK: Record<string, number> = { protocol: 0, shared: 1, wire: 2, backends: 3, store: 3, testing: 3, stack: 4, observe: 5, loaders: 6, next: 7, '.': 8 };
/** Besides rank: folders a layer must not import although they sit lower. */
const FORBIDDEN: Record<string, string[]> = { loaders: ['backends'], store: ['backends'], wire: ['backends', 'store'] };
/** Packages a layer may import at module load (anything else must be `import type` or a lazy `import()`). */
const CLIENTS = ['ioredis', 'memjs', 'undici', 'prom-client', '@opentelemetry/api'];

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
  dynamic: boolean;
}

function walk(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

/** Every import, export-from and `import()` of a module, with whether it is erased at runtime. */
function importsOf(file: string, text: string): Edge[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const edges: Edge[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const typeOnly = ts.isImportDeclaration(node) ? Boolean(node.importClause?.isTypeOnly) : node.isTypeOnly;
      edges.push({ from: file, to: node.moduleSpecifier.text, typeOnly, dynamic: false });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      edges.push({ from: file, to: node.arguments[0].text, typeOnly: false, dynamic: true });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      edges.push({ from: file, to: node.argument.literal.text, typeOnly: true, dynamic: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

function layerOf(relative: string): string {
  return relative.includes('/') ? relative.split('/')[0]! : '.';
}

/** The rule broken by one edge, or null. `from` is relative to src/. */
function violation(from: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  const to = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  if (to.startsWith('..')) return `${from} imports ${specifier}, outside src/`;
  const a = layerOf(from);
  const b = layerOf(to);
  if (!(a in RANK)) return `${from} is in no layer: add its folder to the layer list`;
  if (!(b in RANK)) return `${to} is in no layer`;
  if (a === b) return null;
  if (FORBIDDEN[a]?.includes(b)) return `${from} (${a}) imports ${to}: ${a} never imports ${b}`;
  if (RANK[b]! >= RANK[a]!) return `${from} (${a}) imports ${to} (${b}): imports point down only`;
  return null;
}

const files = walk(SRC).map((file) => ({ rel: path.relative(SRC, file).split(path.sep).join('/'), text: fs.readFileSync(file, 'utf8') }));

describe('architecture: the layers of src/', () => {
  it('every file sits in a layer', () => {
    expect(files.filter((f) => !(layerOf(f.rel) in RANK)).map((f) => f.rel)).toEqual([]);
  });

  it('every import points down (type imports included: they couple the layers as much)', () => {
    const broken = files.flatMap((f) =>
      importsOf(f.rel, f.text)
        .map((e) => violation(f.rel, e.to))
        .filter((v): v is string => v !== null),
    );
    expect(broken).toEqual([]);
  });

  it('nothing imports next/ but the entry points', () => {
    const importers = files
      .filter((f) => layerOf(f.rel) !== '.' && layerOf(f.rel) !== 'next')
      .filter((f) => importsOf(f.rel, f.text).some((e) => e.to.includes('/next/')));
    expect(importers.map((f) => f.rel)).toEqual([]);
  });

  it('backend clients and optional peers load lazily: ioredis, memjs, undici, prom-client, @opentelemetry/api only as `import type` or `import()`', () => {
    const eager = files.flatMap((f) =>
      importsOf(f.rel, f.text)
        .filter((e) => CLIENTS.some((c) => e.to === c || e.to.startsWith(`${c}/`)) && !e.typeOnly && !e.dynamic)
        .map((e) => `${f.rel} -> ${e.to}`),
    );
    expect(eager).toEqual([]);
  });

  it('the rules catch what they forbid (so the tests above can fail)', () => {
    expect(violation('store/tiered.ts', '../backends/redis.js')).toMatch(/store never imports backends/);
    expect(violation('loaders/cache.ts', '../backends/memory.js')).toMatch(/loaders never imports backends/);
    expect(violation('shared/log.ts', '../wire/frame.js')).toMatch(/imports point down only/);
    expect(violation('backends/redis.ts', '../store/tiered.js')).toMatch(/imports point down only/);
    expect(violation('stack/stack.ts', '../next/cache-handler.js')).toMatch(/imports point down only/);
    expect(violation('next/config.ts', '../stack/stack.js')).toBeNull();
    expect(violation('protocol/backend.ts', './backend.js')).toBeNull();
    expect(
      importsOf('x.ts', "import type { A } from './a.js'; export { B } from '../b.js'; const c = () => import('../c.js'); type D = import('./d.js').D;"),
    ).toEqual([
      { from: 'x.ts', to: './a.js', typeOnly: true, dynamic: false },
      { from: 'x.ts', to: '../b.js', typeOnly: false, dynamic: false },
      { from: 'x.ts', to: '../c.js', typeOnly: false, dynamic: true },
      { from: 'x.ts', to: './d.js', typeOnly: true, dynamic: false },
    ]);
  });
});
