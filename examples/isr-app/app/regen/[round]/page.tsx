import { appendFileSync } from 'node:fs';

// Short on purpose: e2e/fleet-regeneration.spec.ts lets it go stale and counts its regenerations across instances.
export const revalidate = 4;

// No path at build time: each one is rendered on its first request, then cached and regenerated like any ISR page.
export function generateStaticParams(): { round: string }[] {
  return [];
}

export default async function RegenPage({ params }: { params: Promise<{ round: string }> }) {
  const { round } = await params;
  const renderId = Math.random().toString(36).slice(2, 10);
  // One line per render, whichever `next start` process renders: the spec counts regenerations across the fleet.
  const log = process.env.REGEN_RENDER_LOG;
  if (log) appendFileSync(log, `${JSON.stringify({ round, renderId, instance: process.env.REGEN_INSTANCE ?? '' })}\n`);
  // A render that takes a moment, as real ones do: an instance that regenerates does so while the others read too.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  return (
    <main>
      <h1>Regenerated page {round}</h1>
      <p>render id: <span id="render-id">{renderId}</span></p>
    </main>
  );
}
