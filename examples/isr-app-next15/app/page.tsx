import Link from 'next/link';

export default function Home() {
  return (
    <main>
      <h1>cachekit-next ISR example</h1>
      <ul>
        <li><Link href="/isr">ISR page</Link></li>
        <li><Link href="/tagged">Tagged data (fetch + unstable_cache)</Link></li>
        <li><a href="/api/time">Cached route handler</a></li>
      </ul>
    </main>
  );
}
