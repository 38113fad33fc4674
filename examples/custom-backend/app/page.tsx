import { revalidateUpstream } from './actions';
import { getReport, getUpstream } from './data';

// ISR: rendered once, stored in the kv service and served by every instance for 60 s, or until its tag is revalidated.
export const revalidate = 60;

export default async function Home() {
  const [upstream, report] = await Promise.all([getUpstream(), getReport()]);
  return (
    <main>
      <h1>cachekit-next with a custom backend</h1>
      <p>rendered at <span id="rendered-at">{new Date().toISOString()}</span> by process <span id="pid">{process.pid}</span></p>
      <p>upstream (fetch, tag &apos;upstream&apos;): <span id="upstream">{upstream.uuid}</span></p>
      <p>report (cache(fn), tag &apos;upstream&apos;): <span id="report">{report.id}</span>, computed at {report.computedAt}</p>
      <form action={revalidateUpstream}>
        <button id="revalidate" type="submit">revalidateTag(&apos;upstream&apos;)</button>
      </form>
    </main>
  );
}
