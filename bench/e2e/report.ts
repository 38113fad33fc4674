/**
 * The e2e results as files: JSON (everything measured, with the machine and versions), a Markdown table, and an SVG
 * bar chart drawn from the JSON (hand-written SVG, no browser), which the README shows.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LoadResult, StampedeResult } from './load.js';

export interface Cell extends LoadResult {
  scenario: string;
  contender: string;
  /** req/s of every interleaved round (the cell's other figures are those of the median round). */
  roundsReqPerSec?: number[];
}

export interface StampedeCell extends StampedeResult {
  contender: string;
  instances: number;
  originCalls: number;
}

export interface Results {
  name: string;
  date: string;
  machine: { cpus: number; model: string; node: string; loadAverage: { start: number[]; end: number[] }; commit: string };
  versions: Record<string, string>;
  settings: Record<string, number | string>;
  scenarios: Record<string, string>;
  contenders: string[];
  cells: Cell[];
  stampede: StampedeCell[];
}

const fmt = (value: number, decimals = 0) => value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });

export function markdown(results: Results): string {
  const { machine, versions, settings } = results;
  const lines = [
    `# e2e benchmark, ${results.date}`,
    '',
    `${machine.cpus} x ${machine.model}, Node ${machine.node}, commit ${machine.commit}; load average at start ${machine.loadAverage.start.map((l) => l.toFixed(2)).join(' ')}, at the end ${machine.loadAverage.end.map((l) => l.toFixed(2)).join(' ')}.`,
    `Versions: ${Object.entries(versions)
      .map(([name, version]) => `${name} ${version}`)
      .join(', ')}.`,
    `Settings: ${Object.entries(settings)
      .map(([name, value]) => `${name} ${value}`)
      .join(', ')}.`,
    '',
    'Each cell: requests/s of the median round (x the built-in cache in the same scenario; for a shared handler also x `map`, the floor of any custom handler: a Map in the process) [range over the interleaved rounds], its p50 / p99 latency, server CPU per request (all processes of the servers), RSS of the servers after it.',
    '',
    `| scenario | ${results.contenders.join(' | ')} |`,
    `| --- | ${results.contenders.map(() => '---').join(' | ')} |`,
  ];
  for (const [scenario, label] of Object.entries(results.scenarios)) {
    const base = results.cells.find((c) => c.scenario === scenario && c.contender === 'next');
    const floor = results.cells.find((c) => c.scenario === scenario && c.contender === 'map');
    const cells = results.contenders.map((contender) => {
      const c = results.cells.find((cell) => cell.scenario === scenario && cell.contender === contender);
      if (!c) return 'n/a';
      const ofFloor = floor && contender !== 'next' && contender !== 'map' ? `, ${(c.reqPerSec / floor.reqPerSec).toFixed(2)}x the floor` : '';
      const ratio = base ? ` (${(c.reqPerSec / base.reqPerSec).toFixed(2)}x${ofFloor})` : '';
      const failures = c.failures > 0 ? `, **${c.failures} failed**` : '';
      const spread = c.roundsReqPerSec ? ` [${fmt(Math.min(...c.roundsReqPerSec))}-${fmt(Math.max(...c.roundsReqPerSec))}]` : '';
      return `${fmt(c.reqPerSec)} req/s${ratio}${spread}, ${fmt(c.p50Ms)} / ${fmt(c.p99Ms)} ms, ${fmt(c.cpuMsPerRequest, 2)} ms CPU, ${fmt(c.rssBytes / 2 ** 20)} MB${failures}`;
    });
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
  }
  if (results.stampede.length > 0) {
    lines.push('', 'Stampede: a hard `revalidateTag` on instance A, then 200 concurrent requests split over two instances.', '');
    lines.push('| contender | origin calls | failed responses | slowest response |', '| --- | --- | --- | --- |');
    for (const s of results.stampede) lines.push(`| ${s.contender} | ${s.originCalls} | ${s.failures} of ${s.requests} | ${fmt(s.maxMs)} ms |`);
  }
  return `${lines.join('\n')}\n`;
}

const COLORS: Record<string, string> = {
  next: '#8c8c8c',
  map: '#c4c4c4',
  'cachekit-unmerged': '#93c5fd',
  cachekit: '#2563eb',
  forte: '#f59e0b',
  trieb: '#10b981',
};
const xml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Grouped bars: requests/s per scenario, one bar per contender, labelled with the value and the ratio to Next's. */
export function svg(results: Results): string {
  const scenarios = Object.entries(results.scenarios);
  const n = results.contenders.length;
  const bar = 26;
  const groupWidth = n * bar + 40;
  const left = 60;
  const top = 60;
  const height = 260;
  const width = left + scenarios.length * groupWidth + 20;
  const max = Math.max(1, ...results.cells.map((c) => c.reqPerSec));
  const y = (value: number) => top + height - (value / max) * height;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${top + height + 70}" viewBox="0 0 ${width} ${top + height + 70}" font-family="sans-serif" font-size="11">`,
    `<title>${xml(`next start requests per second by scenario and cache handler, ${results.date}`)}</title>`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">next start, requests/s (higher is better), ${xml(results.date)}</text>`,
    `<text x="${left}" y="38" fill="#555">${xml(`${results.machine.cpus} CPUs, Node ${results.machine.node}, Next ${results.versions.next}, ${results.settings.connections} connections, ${results.settings.seconds} s per cell`)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const value = (max * i) / 4;
    out.push(`<line x1="${left}" x2="${width - 10}" y1="${y(value)}" y2="${y(value)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${y(value) + 4}" text-anchor="end" fill="#555">${fmt(value)}</text>`);
  }
  scenarios.forEach(([scenario, label], g) => {
    const x0 = left + g * groupWidth + 20;
    const base = results.cells.find((c) => c.scenario === scenario && c.contender === 'next');
    results.contenders.forEach((contender, i) => {
      const cell = results.cells.find((c) => c.scenario === scenario && c.contender === contender);
      const x = x0 + i * bar;
      if (!cell) {
        out.push(`<text x="${x + bar / 2}" y="${top + height - 4}" text-anchor="middle" fill="#999">n/a</text>`);
        return;
      }
      out.push(
        `<rect x="${x + 2}" y="${y(cell.reqPerSec)}" width="${bar - 4}" height="${top + height - y(cell.reqPerSec)}" fill="${COLORS[contender] ?? '#444'}"/>`,
      );
      const ratio = base ? `${(cell.reqPerSec / base.reqPerSec).toFixed(2)}x` : '';
      out.push(`<text x="${x + bar / 2}" y="${y(cell.reqPerSec) - 4}" text-anchor="middle" font-size="9">${ratio}</text>`);
    });
    out.push(`<text x="${x0 + (n * bar) / 2}" y="${top + height + 16}" text-anchor="middle">${xml(label)}</text>`);
  });
  results.contenders.forEach((contender, i) => {
    const x = left + i * 110;
    out.push(`<rect x="${x}" y="${top + height + 36}" width="12" height="12" fill="${COLORS[contender] ?? '#444'}"/>`);
    out.push(
      `<text x="${x + 16}" y="${top + height + 46}">${xml(contender === 'next' ? 'Next built-in' : contender === 'map' ? 'floor: Map handler' : contender)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Writes `<dir>/<name>-<date>.json` and `.md`, and `<dir>/<name>.svg` (the chart the README shows). */
export function writeResults(dir: string, results: Results): string[] {
  mkdirSync(dir, { recursive: true });
  const base = path.join(dir, `${results.name}-${results.date}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(`${base}.md`, markdown(results));
  writeFileSync(path.join(dir, `${results.name}.svg`), svg(results));
  return [`${base}.json`, `${base}.md`, path.join(dir, `${results.name}.svg`)];
}
