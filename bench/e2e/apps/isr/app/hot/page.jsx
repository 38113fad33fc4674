import { paragraphs } from '../text.js';

export const revalidate = 3600;

/** The one hot cached ISR page (~20 KB of HTML). */
export default function HotPage() {
  return (
    <main>
      <h1>Hot page</h1>
      {paragraphs(1, 10_000).map((text, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: static text
        <p key={i}>{text}</p>
      ))}
    </main>
  );
}
