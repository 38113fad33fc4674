export default function Home() {
  return (
    <main>
      <h1>cachekit-next, configured with withCachekit</h1>
      <a href="/isr">ISR page</a>
    </main>
  );
}
