export const revalidate = 3600;

/** Every render fetches from the bench's origin (which counts requests), tagged `stampede`. */
export default async function StampedePage() {
  const res = await fetch(`${process.env.BENCH_ORIGIN_URL}/stampede`, { next: { tags: ['stampede'], revalidate: 3600 } });
  const { n } = await res.json();
  return (
    <main>
      <h1>Stampede</h1>
      <p>
        origin call <span id="n">{n}</span>
      </p>
    </main>
  );
}
