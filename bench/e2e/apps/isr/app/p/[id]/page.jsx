import { paragraphs } from '../../text.js';

export const revalidate = 3600;
export const dynamicParams = true;

/** None at build: each of the 2,000 pages is rendered on its first request, then served from the cache (ISR). */
export function generateStaticParams() {
  return [];
}

export default async function ManyPage({ params }) {
  const { id } = await params;
  return (
    <main>
      <h1>Page {id}</h1>
      {paragraphs(Number(id) + 2, 3_000).map((text, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: static text
        <p key={i}>{text}</p>
      ))}
    </main>
  );
}
