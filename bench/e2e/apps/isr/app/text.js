const WORDS =
  'the of and to in is you that it was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then café Zürich 東京 Москва'.split(
    ' ',
  );

/** Deterministic filler text of about `bytes` bytes: pages of a realistic size without a data source. */
export function paragraphs(seed, bytes) {
  let a = seed >>> 0;
  const out = [];
  let size = 0;
  while (size < bytes) {
    const words = [];
    for (let i = 0; i < 40; i++) {
      a = (Math.imul(a, 1103515245) + 12345) >>> 0;
      words.push(WORDS[a % WORDS.length]);
    }
    const text = words.join(' ');
    out.push(text);
    size += text.length + 7;
  }
  return out;
}
