/**
 * The Grafana dashboard's panel queries (examples/observability/grafana/dashboards/cachekit-next.json) evaluated by a
 * real Prometheus, with the checks that make a query naming a metric or label that does not exist fail: PromQL itself
 * answers such a query with an empty result (or a series lacking the label), never an error.
 */
import { expect } from '@playwright/test';
import { dashboardTargets, withRateInterval, type DashboardTarget, type Prometheus, type PromSample } from '../../scripts/prometheus.mjs';

export { dashboardTargets };

/** The labels an expression groups by (`by (a, b)`) and names in its matchers (`{a="x", b!~"y"}`). */
function namedLabels(expr: string): { grouped: string[]; matched: string[] } {
  const grouped = [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim()));
  const matched = [...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!));
  return { grouped: grouped.filter(Boolean), matched };
}

/** Metric names in an expression: the `cachekit_` ones (PromQL's functions and keywords never start so). */
const metricNames = (expr: string): string[] => [...new Set(expr.match(/\bcachekit_[a-zA-Z0-9_:]*/g) ?? [])];

/**
 * Evaluates `target.expr` at `time` (default now) with `$__rate_interval` set to `window`, and checks what a panel
 * needs to draw: the query succeeds; each metric it names has series in Prometheus carrying every label the query
 * groups by or matches on; the result is non-empty; and each result series has the labels its legend shows. Returns
 * the result vector.
 */
export async function evaluatePanel(prom: Prometheus, target: DashboardTarget, window: string, time?: number): Promise<PromSample[]> {
  const what = `panel "${target.panel}" ${target.refId}: ${target.expr}`;
  const expr = withRateInterval(target.expr, window);
  const { grouped, matched } = namedLabels(expr);
  const seriesLabels = new Set<string>();
  for (const name of metricNames(expr)) {
    const series = await prom.api<Record<string, string>[]>('/api/v1/series', { 'match[]': name, start: String(prom.startedAt / 1000 - 60) });
    expect(series.length, `${what}: Prometheus has no series named ${name}`).toBeGreaterThan(0);
    for (const s of series) for (const label of Object.keys(s)) seriesLabels.add(label);
  }
  for (const label of [...grouped, ...matched]) expect(seriesLabels, `${what}: no series of it carries the label "${label}"`).toContain(label);

  const result = await prom.query(expr, time);
  expect(result.length, `${what}: empty result`).toBeGreaterThan(0);
  const legend = [...target.legendFormat.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!);
  for (const sample of result) {
    for (const label of legend) expect(sample.metric[label], `${what}: a result series lacks "${label}" (legend ${target.legendFormat})`).toBeTruthy();
  }
  return result;
}

/** The sample values of a result vector whose labels include `labels`. */
export function values(result: PromSample[], labels: Record<string, string> = {}): number[] {
  return result.filter((s) => Object.entries(labels).every(([k, v]) => s.metric[k] === v)).map((s) => Number(s.value[1]));
}
