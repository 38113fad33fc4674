import Link from 'next/link';

export default function Home() {
  return (
    <main>
      <h1>cachekit-next &apos;use cache&apos; example</h1>
      <ul>
        <li><Link href="/uc">&apos;use cache&apos;, &apos;use cache: remote&apos; and a tagged fetch</Link></li>
      </ul>
    </main>
  );
}
