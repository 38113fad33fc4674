export const revalidate = 3600;

export default function IsrPage() {
  return (
    <main>
      <h1>ISR page</h1>
      <p>render id: <span id="render-id">{Math.random().toString(36).slice(2, 10)}</span></p>
      <p>rendered at: <span id="rendered-at">{Date.now()}</span></p>
    </main>
  );
}
