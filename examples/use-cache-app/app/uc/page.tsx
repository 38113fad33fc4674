import { Suspense } from 'react';
import { connection } from 'next/server';
import { fetchItems, getComputation, getRemoteComputation } from '../data';
import { expireItems, refreshUcPath, staleItems } from '../actions';

/** Rendered per request (after `connection()`), so every read goes through the cache handlers at runtime. */
async function Values() {
  await connection();
  const [computation, remote, items] = await Promise.all([getComputation(), getRemoteComputation(), fetchItems()]);
  return (
    <>
      <p>render id: <span id="render-id">{Math.random().toString(36).slice(2, 10)}</span></p>
      <p>&apos;use cache&apos; id: <span id="uc-id">{computation.id}</span></p>
      <p>&apos;use cache: remote&apos; id: <span id="remote-id">{remote.id}</span></p>
      <p>fetch n: <span id="fetch-n">{items.n}</span></p>
    </>
  );
}

export default function UseCachePage() {
  return (
    <main>
      <h1>&apos;use cache&apos;</h1>
      <Suspense fallback={<p>loading</p>}>
        <Values />
      </Suspense>
      <form action={expireItems}><button id="update-tag" type="submit">updateTag(items)</button></form>
      <form action={staleItems}><button id="revalidate-tag-max" type="submit">revalidateTag(items, max)</button></form>
      <form action={refreshUcPath}><button id="revalidate-path" type="submit">revalidatePath(/uc)</button></form>
    </main>
  );
}
