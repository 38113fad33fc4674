import { getReport, getUpstream } from '../../data';

// Rendered on first request, then kept in Redis (ISR).
export const revalidate = 60;
export async function generateStaticParams() {
  return [];
}

export default async function Item({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const [upstream, report] = await Promise.all([getUpstream(), getReport(id)]);
  return (
    <main>
      <h1>item {id}</h1>
      <p>rendered at <span id="rendered-at">{new Date().toISOString()}</span></p>
      <p>upstream: {upstream.uuid}, report: {report.computedAt}</p>
    </main>
  );
}
