import { getPageValue } from '../data';

/** A prerendered page over a tagged 'use cache' function. */
export default async function TaggedPage() {
  const value = await getPageValue();
  return (
    <main>
      <p>
        id: <span id="id">{value.id}</span>
      </p>
      <p>
        at: <span id="at">{value.at}</span>
      </p>
    </main>
  );
}
