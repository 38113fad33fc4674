export declare const OBSERVABILITY_APP: string;
export declare const DASHBOARD: string;
export interface DashboardTarget {
  panel: string;
  refId: string;
  expr: string;
  legendFormat: string;
}
export declare function dashboardTargets(file?: string): DashboardTarget[];
export declare function withRateInterval(expr: string, window: string): string;
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}
export interface PromSeries {
  metric: Record<string, string>;
  values: [number, string][];
}
export interface PromTarget {
  health: string;
  lastScrape: string;
  lastError: string;
  scrapeUrl: string;
}
export interface Prometheus {
  url: string;
  /** Its process (group) id. */
  pid: number;
  configFile: string;
  startedAt: number;
  log(): string;
  stop(): Promise<void>;
  api<T = unknown>(path: string, params: Record<string, string>): Promise<T>;
  query(expr: string, time?: number): Promise<PromSample[]>;
  queryRange(expr: string, start: number, end: number, step: number): Promise<PromSeries[]>;
  targets(): Promise<PromTarget[]>;
  scrapedAfter(sinceMs?: number, timeoutMs?: number): Promise<void>;
}
export declare function startPrometheus(targets: string[], options?: { scrapeIntervalS?: number }): Promise<Prometheus>;
