import { getReport, getUpstream } from './data';

// ISR: rendered once, kept in Redis for 60 s or until its tag is revalidated.
export const revalidate = 60;

export default async function Home() {
  const [upstream, report] = await Promise.all([getUpstream(), getReport('home')]);
  return (
    <main>
      <h1>cachekit-next observability</h1>
      <p>rendered at <span id="rendered-at">{new Date().toISOString()}</span></p>
      <p>upstream: <span id="upstream">{upstream.uuid}</span>, report: <span id="report">{report.computedAt}</span></p>
      <ul>
        <li><a href="/api/cachekit/metrics">Prometheus metrics</a> (<a href="/api/cachekit/metrics?format=json">as JSON</a>)</li>
        <li><a href="/api/cachekit/health">health</a> (200 while the site serves, degraded or not)</li>
        <li><a href="/api/cachekit/ready">readiness</a> (503 while degraded)</li>
        <li><a href="/items/1">an ISR page rendered on demand</a></li>
      </ul>
    </main>
  );
}
