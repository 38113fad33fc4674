export default function Home() {
  return (
    <main>
      <h1>Cache Components with cachekit-next</h1>
      <ul>
        <li><a href="/api/x">/api/x</a>: prerendered route handler, tagged &apos;use cache&apos;</li>
        <li><a href="/api/untagged">/api/untagged</a>: untagged &apos;use cache&apos; with I/O inside</li>
        <li><a href="/api/life">/api/life</a>: cacheLife revalidate 2 s</li>
        <li><a href="/tagged">/tagged</a>: page, tagged &apos;use cache&apos;</li>
        <li><a href="/actions">/actions</a>: Server Actions</li>
      </ul>
    </main>
  );
}
