'use client';

import { useEffect, useState } from 'react';
import type { Stats } from './stats';

const ratio = (hits: number, misses: number) => (hits + misses === 0 ? '–' : `${Math.round((100 * hits) / (hits + misses))}%`);

/** Hit ratios per loader and overall, refreshed from /api/stats. */
export function LiveStats({ initial }: { initial: Stats }) {
  const [stats, setStats] = useState(initial);
  useEffect(() => {
    const timer = setInterval(async () => {
      try {
        const res = await fetch('/api/stats', { cache: 'no-store' });
        if (res.ok) setStats(await res.json());
      } catch {
        // The server is restarting: keep the last figures.
      }
    }, 1500);
    return () => clearInterval(timer);
  }, []);

  const rows = Object.entries(stats.loaders);
  const total = rows.reduce((sum, [, s]) => ({ hits: sum.hits + s.hits, misses: sum.misses + s.misses }), { hits: 0, misses: 0 });
  return (
    <table data-testid="stats">
      <thead>
        <tr><th>loader</th><th>hits</th><th>L1</th><th>L2</th><th>misses</th><th>hit ratio</th></tr>
      </thead>
      <tbody>
        {rows.map(([name, s]) => (
          <tr key={name} data-testid={`stats-${name}`}>
            <td>{name}</td><td>{s.hits}</td><td>{s.l1Hits}</td><td>{s.l2Hits}</td><td>{s.misses}</td><td>{ratio(s.hits, s.misses)}</td>
          </tr>
        ))}
      </tbody>
      <tfoot>
        <tr>
          <th>all</th><th data-testid="total-hits">{total.hits}</th><th></th><th></th><th>{total.misses}</th>
          <th data-testid="total-ratio">{ratio(total.hits, total.misses)}</th>
        </tr>
      </tfoot>
    </table>
  );
}
