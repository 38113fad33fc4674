import { cacheLife, cacheTag } from 'next/cache';
import { connection } from 'next/server';
import { Suspense } from 'react';
import { paragraphs } from '../text.js';

/** A 'use cache' entry (~5 KB of text, a few elements: the render stays small next to the cache read) read on every request. */
async function getArticle() {
  'use cache';
  cacheTag('article');
  cacheLife({ stale: 300, revalidate: 3600, expire: 86400 });
  return { title: 'Article', paragraphs: paragraphs(1, 5_000) };
}

/** Rendered per request (after `connection()`), so every request reads the entry through the cache handler. */
async function Article() {
  await connection();
  const article = await getArticle();
  return (
    <>
      <h1>{article.title}</h1>
      {article.paragraphs.map((text, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: static text
        <p key={i}>{text}</p>
      ))}
    </>
  );
}

export default function UseCachePage() {
  return (
    <main>
      <Suspense fallback={<p>loading</p>}>
        <Article />
      </Suspense>
    </main>
  );
}
