import { connection } from 'next/server';
import { revalidateCatalog, revalidateHome } from './actions';
import { LiveStats } from './live-stats';
import { loaders, readStats } from './stats';

const LABEL = { l1: 'L1 hit', l2: 'L2 hit', miss: 'miss' } as const;
// What app/loaders.ts configures for each loader.
const SETTINGS: Record<string, string> = {
  catalog: "ttl 300 s, tag 'catalog', 300 ms upstream",
  weather: "ttl 300 s, path '/'",
  rates: 'ttl 20 s, then stale for 40 s',
};

export default async function Home() {
  await connection(); // rendered per request: every load calls the loaders
  const results = await Promise.all(Object.entries(loaders).map(async ([name, load]) => ({ name, ...(await load.detailed()) })));
  const stats = readStats();

  return (
    <main>
      <h1>cachekit-next demo</h1>
      <p>This page called three cached loaders while rendering. Reload it: they come from the cache.</p>
      <p>
        Backend: <strong data-testid="backend">{stats.backend.type}</strong>
        {stats.backend.where && <> in <code data-testid="backend-where">{stats.backend.where}</code></>}
      </p>

      <table>
        <thead>
          <tr><th>loader</th><th>this render</th><th>ms</th><th>value generated at</th><th>value</th></tr>
        </thead>
        <tbody>
          {results.map(({ name, status, stale, ms, value: { generatedAt, ...value } }) => (
            <tr key={name} data-testid={`row-${name}`}>
              <td>
                <code>{name}</code>
                <small>{SETTINGS[name]}</small>
              </td>
              <td>
                <span className={`badge ${status}`} data-testid={`status-${name}`} data-status={status}>{LABEL[status]}</span>
                {stale && <span className="badge stale" data-testid={`stale-${name}`}>stale</span>}
              </td>
              <td>{ms.toFixed(1)}</td>
              <td data-testid={`generated-${name}`}>{generatedAt.slice(11, 23)} UTC</td>
              <td><code>{JSON.stringify(value)}</code></td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="note">
        A server keeps its L1 copy until a write or a revalidation anywhere announces otherwise (by message on Redis, by
        the invalidation epoch it reads per request on File and Memcached): reloads are L1 hits, and a restarted server
        shows L2 hits on its first request.
      </p>

      <div className="actions">
        <form action={revalidateCatalog}>
          <button data-testid="revalidate-tag">Revalidate tag catalog</button>
        </form>
        <form action={revalidateHome}>
          <button data-testid="revalidate-path">Revalidate path /</button>
        </form>
      </div>

      <h2>Hit ratios of this server, live</h2>
      <LiveStats initial={stats} />
      <p className="note" data-testid="observe-links">
        For operators: <a href="/api/cachekit/metrics">Prometheus metrics</a> (
        <a href="/api/cachekit/metrics?format=json">as JSON</a>) and the <a href="/api/cachekit/health">health check</a>; a
        Prometheus + Grafana setup is in examples/observability.
      </p>
    </main>
  );
}
