/**
 * The structural half of the prerender rule (prerender-clock.test.ts walks the paths): in src/, only
 * src/shared/clock.ts reads the time and only src/shared/random.ts draws random values. Next aborts a Cache Components
 * prerender on `Date.now()`, `new Date()`, `Date()`, `Math.random()` and the sync crypto sources; a new call
 * anywhere else fails here, even on a path no test walks. Parsed with TypeScript, so comments and strings don't count.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { randomBytes, randomFraction, randomUUID } from '../../src/shared/random.js';

const SRC = path.resolve(import.meta.dirname, '../../src');
const RANDOM_SOURCES = new Set([
  'randomBytes',
  'randomUUID',
  'randomFillSync',
  'randomInt',
  'getRandomValues',
  'generateKeySync',
  'generatePrimeSync',
  'generateKeyPairSync',
]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

interface Use {
  file: string;
  line: number;
  text: string;
  kind: 'clock' | 'random';
}

/** Every clock read and random draw in `file`, by syntax (aliases of Date or of the crypto functions included). */
function usesIn(file: string, text = readFileSync(file, 'utf8')): Use[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const uses: Use[] = [];
  const add = (node: ts.Node, kind: Use['kind']) =>
    uses.push({ file: path.relative(SRC, file), line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text: node.getText(), kind });
  const isDate = (node: ts.Expression) => ts.isIdentifier(node) && node.text === 'Date';
  const visit = (node: ts.Node): void => {
    if (ts.isNewExpression(node) && isDate(node.expression) && (node.arguments?.length ?? 0) === 0) add(node, 'clock');
    if (ts.isCallExpression(node)) {
      const callee = node.expression;
      if (isDate(callee)) add(node, 'clock');
      if (ts.isPropertyAccessExpression(callee) && isDate(callee.expression) && callee.name.text === 'now') add(node, 'clock');
      if (ts.isPropertyAccessExpression(callee) && ts.isIdentifier(callee.expression) && callee.expression.text === 'Math' && callee.name.text === 'random')
        add(node, 'random');
    }
    // Any reference to Date.now (passed as a function, aliased) or to a crypto random source (imported, called).
    if (ts.isPropertyAccessExpression(node) && isDate(node.expression) && node.name.text === 'now' && !ts.isCallExpression(node.parent)) add(node, 'clock');
    if (ts.isImportSpecifier(node) && RANDOM_SOURCES.has((node.propertyName ?? node.name).text)) {
      const from = (node.parent.parent.parent as ts.ImportDeclaration).moduleSpecifier;
      if (ts.isStringLiteral(from) && /^(node:)?crypto$/.test(from.text)) add(node, 'random');
    }
    if (ts.isPropertyAccessExpression(node) && RANDOM_SOURCES.has(node.name.text)) add(node, 'random');
    ts.forEachChild(node, visit);
  };
  visit(source);
  return uses;
}

describe('clock and randomness in src/', () => {
  const all = sources(SRC).flatMap((file) => usesIn(file));

  it('only src/shared/clock.ts reads the clock', () => {
    const outside = all.filter((u) => u.kind === 'clock' && u.file !== path.join('shared', 'clock.ts'));
    expect(outside.map((u) => `${u.file}:${u.line} ${u.text}`)).toEqual([]);
  });

  it('only src/shared/random.ts draws random values', () => {
    const outside = all.filter((u) => u.kind === 'random' && u.file !== path.join('shared', 'random.ts'));
    expect(outside.map((u) => `${u.file}:${u.line} ${u.text}`)).toEqual([]);
    // The scan sees what it is meant to see: the one module that may draw them does.
    expect(all.some((u) => u.kind === 'random' && u.file === path.join('shared', 'random.ts'))).toBe(true);
  });

  it('the scan finds each form it forbids', () => {
    const probe = [
      "import { createHash, randomUUID } from 'node:crypto';",
      '// Date.now() in a comment, and in a string:',
      "const s = 'Date.now() new Date()';",
      'const a = Date.now() + new Date().getTime() + Number(Date());',
      'const at = new Date(1700000000000);',
      'const clock = Date.now;',
      'const r = Math.random();',
      "const b = require('node:crypto').randomBytes(8) ?? crypto.randomBytes(8);",
      'globalThis.crypto.getRandomValues(new Uint8Array(4));',
    ].join('\n');
    const forms = usesIn(path.join(SRC, 'probe.ts'), probe).map((u) => `${u.kind} ${u.text}`);
    expect(forms).toEqual([
      'random randomUUID',
      'clock Date.now()',
      'clock new Date()',
      'clock Date()',
      'clock Date.now',
      'random Math.random()',
      "random require('node:crypto').randomBytes",
      'random crypto.randomBytes',
      'random globalThis.crypto.getRandomValues',
    ]);
  });
});

describe('src/shared/random.ts', () => {
  it('hands out every byte once, across block boundaries, and UUIDs in the v4 format', () => {
    const nonces = Array.from({ length: 2_000 }, () => randomBytes(12).toString('hex')); // ~6 blocks
    expect(new Set(nonces).size).toBe(nonces.length);
    expect(randomBytes(10_000)).toHaveLength(10_000);
    const ids = Array.from({ length: 1_000 }, () => randomUUID());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const fractions = Array.from({ length: 1_000 }, () => randomFraction());
    expect(fractions.every((f) => f >= 0 && f < 1)).toBe(true);
    expect(new Set(fractions).size).toBeGreaterThan(990);
  });
});
