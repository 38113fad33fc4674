import { revalidatePath, revalidateTag } from 'next/cache';

export const dynamic = 'force-dynamic';

/** POST ?tag=t[&mode=max] or ?path=/p: what a CMS webhook would call. */
export async function POST(request: Request) {
  const url = new URL(request.url);
  const tag = url.searchParams.get('tag');
  const path = url.searchParams.get('path');
  if (tag) revalidateTag(tag, url.searchParams.get('mode') === 'max' ? 'max' : { expire: 0 });
  if (path) revalidatePath(path);
  return Response.json({ revalidated: true, tag, path, now: Date.now() });
}
