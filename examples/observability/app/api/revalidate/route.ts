import { revalidateTag } from 'next/cache';

/** Expires everything tagged 'upstream' (the fetch, the report and the pages using them). */
export async function POST() {
  revalidateTag('upstream', { expire: 0 });
  return Response.json({ revalidated: 'upstream' });
}
