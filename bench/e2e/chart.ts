/**
 * Rewrites the Markdown and the SVG chart of an e2e run from its JSON (the newest bench/results/e2e-*.json, or the
 * one given), without measuring again: `npm run bench -- e2e/chart [file.json]`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { type Results, writeResults } from './report.js';

const dir = path.join(process.cwd(), 'bench', 'results');
const given = process.argv.slice(2).find((arg) => arg.endsWith('.json'));
const newest = readdirSync(dir)
  .filter((name) => /^e2e-.*\.json$/.test(name))
  .sort()
  .pop();
const file = given ?? (newest ? path.join(dir, newest) : undefined);
if (!file) throw new Error(`no e2e results in ${dir}: run npm run bench -- e2e first`);
const results = JSON.parse(readFileSync(file, 'utf8')) as Results;
for (const written of writeResults(dir, results)) console.log(`[e2e] wrote ${path.relative(process.cwd(), written)}`);
