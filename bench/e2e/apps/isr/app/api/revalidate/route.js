import { revalidateTag } from 'next/cache';

export const dynamic = 'force-dynamic';

/** POST ?tag=t: a hard revalidation (expire now), as a CMS webhook would call it. */
export async function POST(request) {
  const tag = new URL(request.url).searchParams.get('tag');
  if (tag) revalidateTag(tag, { expire: 0 });
  return Response.json({ revalidated: tag });
}
