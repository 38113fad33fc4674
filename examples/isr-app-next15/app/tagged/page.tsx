import { cachedComputation, fetchPosts } from '../data';
import { expirePosts, refreshIsrPath, stalePosts } from '../actions';

export const revalidate = 3600;

export default async function TaggedPage() {
  const [posts, computation] = await Promise.all([fetchPosts(), cachedComputation()]);
  return (
    <main>
      <h1>Tagged data</h1>
      <p>render id: <span id="render-id">{Math.random().toString(36).slice(2, 10)}</span></p>
      <p>fetch n: <span id="fetch-n">{posts.n}</span></p>
      <p>unstable_cache id: <span id="uc-id">{computation.id}</span></p>
      <form action={expirePosts}><button id="update-tag" type="submit">updateTag(posts)</button></form>
      <form action={stalePosts}><button id="revalidate-tag-max" type="submit">revalidateTag(posts, max)</button></form>
      <form action={refreshIsrPath}><button id="revalidate-path" type="submit">revalidatePath(/isr)</button></form>
    </main>
  );
}
