/**
 * A real Prometheus (Debian's `prometheus`, installed by scripts/test-all.sh) for the observability e2e test and
 * examples/observability/scripts/render-dashboard.mjs: a free loopback port, a temporary storage directory and a
 * generated config scraping the given `next start` instances' metrics routes. Also the Grafana dashboard's panel
 * queries (grafana/dashboards/cachekit-next.json), so both evaluate the dashboard's own PromQL, not a copy of it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OBSERVABILITY_APP = path.join(ROOT, 'examples', 'observability');
export const DASHBOARD = path.join(OBSERVABILITY_APP, 'grafana', 'dashboards', 'cachekit-next.json');

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** Every panel target of the dashboard: `{ panel, refId, expr, legendFormat }`. */
export function dashboardTargets(file = DASHBOARD) {
  const dashboard = JSON.parse(readFileSync(file, 'utf8'));
  return dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((t) => ({ panel: panel.title, refId: t.refId, expr: t.expr, legendFormat: t.legendFormat ?? '' })),
  );
}

/** A dashboard expression with Grafana's `$__rate_interval` (the only variable the dashboard uses) set to `window`. */
export function withRateInterval(expr, window) {
  const out = expr.replaceAll('$__rate_interval', window);
  if (out.includes('$')) throw new Error(`a Grafana variable this script does not set is left in: ${out}`);
  return out;
}

/**
 * Starts Prometheus scraping `targets` (`host:port` of `next start` instances) at /api/cachekit/metrics every
 * `scrapeIntervalS` seconds; resolves once it is ready. `stop()` kills it and removes its storage.
 */
export async function startPrometheus(targets, { scrapeIntervalS = 1 } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ck-prometheus-'));
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(
    configFile,
    [
      'global:',
      `  scrape_interval: ${scrapeIntervalS}s`,
      `  scrape_timeout: ${scrapeIntervalS}s`,
      `  evaluation_interval: ${scrapeIntervalS}s`,
      'scrape_configs:',
      '  - job_name: cachekit-next',
      '    metrics_path: /api/cachekit/metrics',
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const child = spawn(
    'prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  const spawnError = new Promise((_, reject) => child.once('error', reject));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited with ${child.exitCode}:\n${output}`);
    }
    try {
      const res = await Promise.race([fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) }), spawnError]);
      if (res.status === 200) break;
    } catch (error) {
      if (error?.code === 'ENOENT') {
        rmSync(dir, { recursive: true, force: true });
        throw new Error('prometheus is not installed (scripts/test-all.sh installs it: apt-get install prometheus)');
      }
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not get ready within 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  /** GET an API path; resolves `data`, throws with Prometheus's own error otherwise. */
  const api = async (apiPath, params) => {
    const res = await fetch(`${url}${apiPath}?${new URLSearchParams(params)}`);
    const body = await res.json();
    if (body.status !== 'success') throw new Error(`${apiPath} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
    return body.data;
  };
  return {
    url,
    pid: child.pid,
    configFile,
    startedAt: Date.now(),
    log: () => output,
    stop,
    api,
    /** `/api/v1/query` at `time` (Unix seconds, default now): the result vector. */
    query: async (expr, time) => (await api('/api/v1/query', time === undefined ? { query: expr } : { query: expr, time: String(time) })).result,
    /** `/api/v1/query_range` from `start` to `end` (Unix seconds), one point every `step` seconds: the result matrix. */
    queryRange: async (expr, start, end, step) =>
      (await api('/api/v1/query_range', { query: expr, start: String(start), end: String(end), step: String(step) })).result,
    /** The active scrape targets (`/api/v1/targets`). */
    targets: async () => (await api('/api/v1/targets', { state: 'active' })).activeTargets,
    /**
     * Resolves once every target has been scraped successfully by a scrape that started after `sinceMs` (default:
     * now): what the instances counted before then is in Prometheus.
     */
    async scrapedAfter(sinceMs = Date.now(), timeoutMs = 15_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const active = await this.targets();
        if (active.length === targets.length && active.every((t) => t.health === 'up' && Date.parse(t.lastScrape) > sinceMs)) return;
        if (Date.now() > until) throw new Error(`prometheus did not scrape every target after ${new Date(sinceMs).toISOString()}: ${JSON.stringify(active)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
  };
}
