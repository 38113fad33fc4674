/** Counters kept by every cache, cheap enough for the hot path (plain increments). */
export interface MetricsSnapshot {
  l1Hits: number;
  l2Hits: number;
  misses: number;
  sets: number;
  deletes: number;
  /** Backend failures (each also reported through `onError`). */
  errors: number;
  /** L2 reads made (single-flight waiters share one). */
  l2Reads: number;
  /** Mean latency of L2 reads in ms (0 before the first). */
  l2ReadLatencyMs: number;
  /** (l1Hits + l2Hits) / lookups; 0 before the first lookup. */
  hitRatio: number;
  /** Bytes held by the L1 and its budget. */
  l1Bytes: number;
  l1Entries: number;
}

export class Metrics {
  l1Hits = 0;
  l2Hits = 0;
  misses = 0;
  sets = 0;
  deletes = 0;
  errors = 0;
  l2Reads = 0;
  l2ReadMsTotal = 0;

  snapshot(l1: { bytes: number; entries: number }): MetricsSnapshot {
    const lookups = this.l1Hits + this.l2Hits + this.misses;
    return {
      l1Hits: this.l1Hits,
      l2Hits: this.l2Hits,
      misses: this.misses,
      sets: this.sets,
      deletes: this.deletes,
      errors: this.errors,
      l2Reads: this.l2Reads,
      l2ReadLatencyMs: this.l2Reads === 0 ? 0 : this.l2ReadMsTotal / this.l2Reads,
      hitRatio: lookups === 0 ? 0 : (this.l1Hits + this.l2Hits) / lookups,
      l1Bytes: l1.bytes,
      l1Entries: l1.entries,
    };
  }
}
