export const revalidate = 3600;

export default async function IsrPage() {
  // Cached by the fetch cache (a FETCH entry), at build time in a build worker and at runtime in `next start`.
  const res = await fetch(`${process.env.DATA_URL ?? 'http://127.0.0.1:4999'}/config-app`, { next: { revalidate: 3600 } });
  const data = (await res.json()) as { n: number };
  return (
    <main>
      <h1>ISR page</h1>
      <p>render id: <span id="render-id">{Math.random().toString(36).slice(2, 10)}</span></p>
      <p>upstream request: <span id="fetch-n">{data.n}</span></p>
    </main>
  );
}
