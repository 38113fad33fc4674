#!/usr/bin/env node
/**
 * The dashboard's panels rendered from a real run, for the README where Grafana cannot run (no Docker on the machine
 * that made it). Starts Redis and two `next start` instances of this app (its build in NEXT_DIST_DIR, default
 * .next-e2e-obs: `npx playwright test e2e/observability.spec.ts` makes it, or `next build` with that distDir), puts load
 * on both (ISR pages, a revalidation every 6 s, Redis stopped from 16 s to 26 s), scrapes both metrics routes every
 * 2 s, computes the panels' PromQL by hand (rates, ratios, histogram quantiles) and screenshots them with Chromium.
 *
 *   node examples/observability/scripts/render-dashboard.mjs   (from the repository root; writes examples/observability/dashboard.png)
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from '@playwright/test';

const app = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const distDir = process.env.NEXT_DIST_DIR ?? '.next-e2e-obs';
const RUN_S = 44;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const children = [];
function start(cmd, args, env = {}) {
  const child = spawn(cmd, args, { cwd: app, env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1', ...env }, stdio: 'ignore', detached: true });
  children.push(child);
  return child;
}
const stop = (child) => {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {}
};
async function waitFor(url) {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(url)).status < 500) return;
    } catch {}
    await sleep(150);
  }
  throw new Error(`${url} did not answer`);
}

const redisPort = await freePort();
const startRedis = () => start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
let redis = startRedis();
await sleep(300);
const upstream = (await import('node:http')).createServer((_q, res) => res.end(JSON.stringify({ uuid: crypto.randomUUID() }))).listen(0, '127.0.0.1');
await new Promise((r) => upstream.once('listening', r));
const env = { REDIS_URL: `redis://127.0.0.1:${redisPort}`, UPSTREAM_URL: `http://127.0.0.1:${upstream.address().port}`, NEXT_DIST_DIR: distDir };
const instances = [];
for (let i = 0; i < 2; i++) {
  const port = await freePort();
  start(path.join(app, 'node_modules', '.bin', 'next'), ['start', '-p', String(port), '-H', '127.0.0.1'], env);
  instances.push(`http://127.0.0.1:${port}`);
}
for (const url of instances) await waitFor(`${url}/api/cachekit/health`);

/** One scrape of both instances, summed per series (what `sum by` does in Prometheus). */
async function scrape() {
  const series = new Map();
  for (const url of instances) {
    const text = await (await fetch(`${url}/api/cachekit/metrics`)).text();
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z0-9_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) continue;
      const key = `${m[1]}{${m[2] ?? ''}}`;
      // Counters and histograms add up across processes; the breaker state gauge is shown as its worst (max by).
      const merge = m[1] === 'cachekit_breaker_state' ? Math.max : (a, b) => a + b;
      series.set(key, series.has(key) ? merge(series.get(key), Number(m[3])) : Number(m[3]));
    }
  }
  return series;
}

const started = Date.now();
const scrapes = [];
let stopping = false;
const load = (async () => {
  let n = 0;
  while (!stopping) {
    const url = instances[n % 2];
    await fetch(`${url}/items/${n % 25}`).then((r) => r.arrayBuffer(), () => {});
    if (n % 7 === 0) await fetch(`${url}/`).then((r) => r.arrayBuffer(), () => {});
    n++;
    await sleep(15);
  }
})();
let revalidated = 0;
let redisDown = false;
while (Date.now() - started < RUN_S * 1000) {
  const t = (Date.now() - started) / 1000;
  if (t >= 6 * (revalidated + 1)) {
    revalidated++;
    await fetch(`${instances[0]}/api/revalidate`, { method: 'POST' }).catch(() => {});
  }
  if (t >= 16 && t < 26 && !redisDown) {
    redisDown = true;
    stop(redis);
  }
  if (t >= 26 && redisDown) {
    redisDown = false;
    redis = startRedis();
  }
  scrapes.push({ t, series: await scrape(), redisDown });
  await sleep(2000);
}
stopping = true;
await load;

// ---- the panels' queries, by hand ----
const parse = (key) => {
  const m = /^([^{]+)\{(.*)\}$/.exec(key);
  return { name: m[1], labels: Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]])) };
};
/** sum by (by) of the increase of `name` (filtered) between consecutive scrapes, per second. */
function rateBy(name, by, filter = () => true) {
  const out = {};
  for (let i = 1; i < scrapes.length; i++) {
    const dt = scrapes[i].t - scrapes[i - 1].t;
    const sums = {};
    for (const [key, v] of scrapes[i].series) {
      const { name: n, labels } = parse(key);
      if (n !== name || !filter(labels)) continue;
      const group = by(labels);
      const prev = scrapes[i - 1].series.get(key) ?? 0;
      sums[group] = (sums[group] ?? 0) + Math.max(0, v - prev) / dt;
    }
    for (const [g, v] of Object.entries(sums)) (out[g] ??= []).push([scrapes[i].t, v]);
  }
  return out;
}
function quantileBy(name, q, by) {
  const out = {};
  for (let i = 1; i < scrapes.length; i++) {
    const buckets = {};
    for (const [key, v] of scrapes[i].series) {
      const { name: n, labels } = parse(key);
      if (n !== `${name}_bucket`) continue;
      const group = by(labels);
      const inc = Math.max(0, v - (scrapes[i - 1].series.get(key) ?? 0));
      ((buckets[group] ??= {})[labels.le] ??= 0);
      buckets[group][labels.le] += inc;
    }
    for (const [g, b] of Object.entries(buckets)) {
      const les = Object.keys(b).sort((x, y) => (x === '+Inf' ? 1 : y === '+Inf' ? -1 : Number(x) - Number(y)));
      const total = b['+Inf'] ?? 0;
      if (total === 0) continue;
      const rank = q * total;
      let prevLe = 0;
      let prevCount = 0;
      let value = null;
      for (const le of les) {
        if (b[le] >= rank) {
          const upper = le === '+Inf' ? prevLe : Number(le);
          value = b[le] === prevCount ? upper : prevLe + ((upper - prevLe) * (rank - prevCount)) / (b[le] - prevCount);
          break;
        }
        prevLe = Number(le);
        prevCount = b[le];
      }
      if (value !== null) (out[g] ??= []).push([scrapes[i].t, value]);
    }
  }
  return out;
}
const hits = rateBy('cachekit_lookups_total', (l) => l.kind, (l) => l.outcome !== 'miss');
const all = rateBy('cachekit_lookups_total', (l) => l.kind);
const ratio = Object.fromEntries(
  Object.entries(all).map(([kind, points]) => [kind, points.map(([t, v]) => [t, v === 0 ? 0 : ((hits[kind] ?? []).find((p) => p[0] === t)?.[1] ?? 0) / v])]),
);
const panels = [
  { title: 'Hit ratio by kind', unit: '%', scale: 100, series: ratio },
  {
    title: 'L2 latency percentiles (get, set)',
    unit: 'ms',
    scale: 1000,
    series: Object.fromEntries(
      [0.5, 0.95, 0.99].flatMap((q) =>
        Object.entries(quantileBy('cachekit_l2_operation_duration_seconds', q, (l) => l.operation))
          .filter(([op]) => op === 'get' || op === 'set')
          .map(([op, p]) => [`p${q * 100} ${op}`, p]),
      ),
    ),
  },
  { title: 'L2 errors by kind (per s)', unit: '/s', scale: 1, series: rateBy('cachekit_l2_errors_total', (l) => `${l.backend} ${l.error_kind}`) },
  {
    title: 'Circuit breaker state (0 closed, 1 half-open, 2 open)',
    unit: '',
    scale: 1,
    series: {
      redis: scrapes.map((s) => [s.t, Math.max(0, ...[...s.series].filter(([k]) => k.startsWith('cachekit_breaker_state{')).map(([, v]) => v / 1))]),
    },
  },
  { title: 'Invalidation lag p95', unit: 'ms', scale: 1000, series: quantileBy('cachekit_invalidation_lag_seconds', 0.95, () => 'lag p95') },
  { title: 'Lookups by layer and outcome (per s)', unit: '/s', scale: 1, series: rateBy('cachekit_lookups_total', (l) => `${l.outcome} ${l.layer}`) },
];

const COLORS = ['#73bf69', '#f2cc0c', '#5794f2', '#ff780a', '#f2495c', '#b877d9', '#8ab8ff', '#fade2a', '#96d98d'];
function svg(panel) {
  const W = 560;
  const H = 200;
  const pad = 36;
  const points = Object.values(panel.series).flat();
  const max = Math.max(1e-9, ...points.map(([, v]) => v * panel.scale));
  const x = (t) => pad + ((W - pad - 8) * t) / RUN_S;
  const y = (v) => H - 22 - ((H - 40) * v * panel.scale) / max;
  const shade = `<rect x="${x(16)}" y="8" width="${x(26) - x(16)}" height="${H - 30}" fill="#f2495c22"/><text x="${x(16) + 4}" y="20" fill="#f2495c" font-size="10">Redis stopped</text>`;
  const lines = Object.entries(panel.series)
    .map(([name, pts], i) => `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`)
    .join('');
  const axis = [0, 0.5, 1]
    .map((f) => `<text x="2" y="${(y((max * f) / panel.scale) + 3).toFixed(1)}" fill="#9fa7b3" font-size="10">${(max * f).toFixed(max < 10 ? 2 : 0)}${panel.unit}</text>`)
    .join('');
  const legend = Object.keys(panel.series)
    .map((name, i) => `<span style="color:${COLORS[i % COLORS.length]}">■</span> ${name}`)
    .join('&nbsp;&nbsp; ');
  return `<div class="panel"><h3>${panel.title}</h3><svg width="${W}" height="${H}">${shade}${axis}${lines}<text x="${W - 60}" y="${H - 6}" fill="#9fa7b3" font-size="10">${RUN_S} s</text></svg><div class="legend">${legend}</div></div>`;
}
const html = `<!doctype html><html><head><style>
body{background:#111217;color:#d8d9da;font:13px system-ui,sans-serif;margin:16px;width:1200px}
h1{font-size:18px;margin:0 0 4px} .note{color:#f2cc0c;margin:0 0 12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px} .panel{background:#181b1f;border:1px solid #2c3235;border-radius:4px;padding:8px}
h3{font-size:13px;margin:0 0 6px;font-weight:600} .legend{font-size:11px;color:#9fa7b3;margin-top:4px}
</style></head><body><h1>cachekit-next dashboard: the panels of grafana/dashboards/cachekit-next.json</h1>
<p class="note">Rendered by scripts/render-dashboard.mjs from a real run (two next start instances on one Redis, ${scrapes.length} scrapes of their
/api/cachekit/metrics, 2 s apart), not by Grafana: there is no Docker on the machine that made it. Queries computed as the panels' PromQL.</p>
<div class="grid">${panels.map(svg).join('')}</div></body></html>`;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1232, height: 900 } });
await page.setContent(html);
await page.screenshot({ path: path.join(app, 'dashboard.png'), fullPage: true });
await browser.close();
for (const child of children) stop(child);
upstream.close();
console.log(`wrote ${path.join(app, 'dashboard.png')} (${scrapes.length} scrapes)`);
process.exit(0);
