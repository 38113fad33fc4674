import { getCatalog, getUpstream } from './data';

// ISR: rendered once, kept in the shared store and served by every container for 5 minutes, or until its tag is
// revalidated (POST /api/revalidate?tag=catalog).
export const revalidate = 300;

export default async function Home() {
  const [upstream, catalog] = await Promise.all([getUpstream(), getCatalog()]);
  return (
    <main>
      <h1>cachekit-next in containers</h1>
      <p>rendered at <span id="rendered-at">{new Date().toISOString()}</span> by <span id="host">{process.env.HOSTNAME ?? '?'}</span>:<span id="pid">{process.pid}</span></p>
      <p>upstream (fetch, tag &apos;catalog&apos;): <span id="upstream">{JSON.stringify(upstream)}</span></p>
      <p>catalog (unstable_cache, tag &apos;catalog&apos;): <span id="catalog">{catalog.id}</span></p>
      <ul>
        {catalog.items.map((item) => (
          <li key={item.sku}>
            {item.name}: {item.price} ({item.sku})
          </li>
        ))}
      </ul>
    </main>
  );
}
