#!/usr/bin/env node
/**
 * The dashboard's panels rendered from a real run, for the README where Grafana cannot run (no Docker on the machine
 * that made it). Starts Redis, two `next start` instances of this app (its build in NEXT_DIST_DIR, default
 * .next-e2e-obs: `npx playwright test e2e/observability.spec.ts` makes it, or `next build` with that distDir) and a real
 * Prometheus (`prometheus` on the PATH: Debian's 2.42, scripts/test-all.sh installs it) scraping both every second;
 * puts load on both (ISR pages, a revalidation every 6 s, Redis stopped from 16 s to 26 s); then asks Prometheus
 * (`/api/v1/query_range`) for every panel target `expr` of grafana/dashboards/cachekit-next.json and draws the answers
 * with Chromium. No PromQL is computed here: the lines are Prometheus's.
 *
 *   node examples/observability/scripts/render-dashboard.mjs   (from the repository root; writes examples/observability/dashboard.png)
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from '@playwright/test';
import { DASHBOARD, startPrometheus, withRateInterval } from '../../../scripts/prometheus.mjs';

const app = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const distDir = process.env.NEXT_DIST_DIR ?? '.next-e2e-obs';
const RUN_S = 44;
const SCRAPE_S = 1;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const children = [];
process.on('exit', () => {
  for (const child of children) stop(child);
});
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

const prom = await startPrometheus(
  instances.map((url) => url.replace('http://', '')),
  { scrapeIntervalS: SCRAPE_S },
);
children.push({ pid: prom.pid }); // killed with the rest if the run fails
await prom.scrapedAfter();

const started = Date.now();
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
const outage = { from: null, to: null };
while (Date.now() - started < RUN_S * 1000) {
  const t = (Date.now() - started) / 1000;
  if (t >= 6 * (revalidated + 1)) {
    revalidated++;
    await fetch(`${instances[0]}/api/revalidate`, { method: 'POST' }).catch(() => {});
  }
  if (t >= 16 && t < 26 && !redisDown) {
    redisDown = true;
    outage.from = t;
    stop(redis);
  }
  if (t >= 26 && redisDown) {
    redisDown = false;
    outage.to = t;
    redis = startRedis();
  }
  await sleep(250);
}
stopping = true;
await load;
await prom.scrapedAfter();

// ---- every panel target of the dashboard, answered by Prometheus over the run ----
// Grafana's $__rate_interval is max($__interval + scrape interval, 4 x scrape interval): with this 1 s scrape interval
// and a 1 s step (44 s drawn across a panel) that is 4 s.
const RATE_INTERVAL = `${4 * SCRAPE_S}s`;
const PROM_VERSION = (await prom.api('/api/v1/status/buildinfo', {})).version;
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
const UNITS = { percentunit: { unit: '%', scale: 100 }, ops: { unit: '/s', scale: 1 }, s: { unit: 'ms', scale: 1000 }, bytes: { unit: ' KiB', scale: 1 / 1024 } };
const legendOf = (format, metric) => format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, label) => metric[label] ?? '');
const startS = started / 1000;
let queries = 0;
const panels = [];
for (const panel of dashboard.panels) {
  const series = {};
  for (const target of panel.targets ?? []) {
    const result = await prom.queryRange(withRateInterval(target.expr, RATE_INTERVAL), startS, startS + RUN_S, SCRAPE_S);
    queries++;
    for (const s of result) {
      const points = s.values.map(([t, v]) => [t - startS, Number(v)]).filter(([, v]) => Number.isFinite(v));
      if (points.length > 0) series[legendOf(target.legendFormat ?? '', s.metric) || target.refId] = points;
    }
  }
  const unit = UNITS[panel.fieldConfig?.defaults?.unit] ?? { unit: '', scale: 1 };
  panels.push({ title: panel.title, ...unit, series, exprs: (panel.targets ?? []).map((t) => t.expr) });
}
await prom.stop();

const COLORS = ['#73bf69', '#f2cc0c', '#5794f2', '#ff780a', '#f2495c', '#b877d9', '#8ab8ff', '#fade2a', '#96d98d'];
function svg(panel) {
  const W = 560;
  const H = 200;
  const pad = 36;
  const points = Object.values(panel.series).flat();
  const max = Math.max(1e-9, ...points.map(([, v]) => v * panel.scale));
  const x = (t) => pad + ((W - pad - 8) * t) / RUN_S;
  const y = (v) => H - 22 - ((H - 40) * v * panel.scale) / max;
  const [from, to] = [outage.from ?? 16, outage.to ?? 26];
  const shade = `<rect x="${x(from)}" y="8" width="${x(to) - x(from)}" height="${H - 30}" fill="#f2495c22"/><text x="${x(from) + 4}" y="20" fill="#f2495c" font-size="10">Redis stopped</text>`;
  // A step Prometheus left without a value (no sample, or NaN: no observation in the window) is a gap, as in Grafana.
  const segments = (pts) => pts.reduce((out, p, i) => (i > 0 && p[0] - pts[i - 1][0] > SCRAPE_S * 1.5 ? out.push([p]) : out.at(-1).push(p), out), [[]]);
  const lines = Object.values(panel.series)
    .flatMap((pts, i) =>
      segments(pts).map(
        (seg) =>
          `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${seg.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`,
      ),
    )
    .join('');
  const axis = [0, 0.5, 1]
    .map((f) => `<text x="2" y="${(y((max * f) / panel.scale) + 3).toFixed(1)}" fill="#9fa7b3" font-size="10">${(max * f).toFixed(max < 10 ? 2 : 0)}${panel.unit}</text>`)
    .join('');
  const legend = Object.keys(panel.series)
    .map((name, i) => `<span style="color:${COLORS[i % COLORS.length]}">■</span> ${name}`)
    .join('&nbsp;&nbsp; ');
  const exprs = panel.exprs.map((e) => `<code>${e.replaceAll('<', '&lt;')}</code>`).join('<br>');
  return `<div class="panel"><h3>${panel.title}</h3><svg width="${W}" height="${H}">${shade}${axis}${lines}<text x="${W - 60}" y="${H - 6}" fill="#9fa7b3" font-size="10">${RUN_S} s</text></svg><div class="legend">${legend || 'no data'}</div><div class="expr">${exprs}</div></div>`;
}
const html = `<!doctype html><html><head><style>
body{background:#111217;color:#d8d9da;font:13px system-ui,sans-serif;margin:16px;width:1200px}
h1{font-size:18px;margin:0 0 4px} .note{color:#f2cc0c;margin:0 0 12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px} .panel{background:#181b1f;border:1px solid #2c3235;border-radius:4px;padding:8px}
h3{font-size:13px;margin:0 0 6px;font-weight:600} .legend{font-size:11px;color:#9fa7b3;margin-top:4px}
.expr{font-size:10px;color:#6e7681;margin-top:4px;font-family:monospace}
</style></head><body><h1>cachekit-next dashboard: the panels of grafana/dashboards/cachekit-next.json</h1>
<p class="note">Not Grafana (it cannot run on the machine that made this): each line is the answer of Prometheus ${PROM_VERSION} (query_range, 1 s
step, $__rate_interval = ${RATE_INTERVAL}) to the panel's own query, shown under it, drawn by scripts/render-dashboard.mjs. The run: two next start
instances on one Redis under load, scraped every ${SCRAPE_S} s, a revalidation every 6 s, Redis stopped for 10 s; ${queries} queries.</p>
<div class="grid">${panels.map(svg).join('')}</div></body></html>`;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1232, height: 900 } });
await page.setContent(html);
await page.screenshot({ path: path.join(app, 'dashboard.png'), fullPage: true });
await browser.close();
for (const child of children) stop(child);
upstream.close();
console.log(`wrote ${path.join(app, 'dashboard.png')} (${queries} panel queries answered by Prometheus ${PROM_VERSION})`);
process.exit(0);
