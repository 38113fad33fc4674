import { revalidateTag } from 'next/cache';

export const dynamic = 'force-dynamic';

/** POST /api/revalidate?tag=catalog: what a CMS webhook calls; every container renders anew. */
export async function POST(request: Request) {
  const tag = new URL(request.url).searchParams.get('tag');
  if (!tag) return Response.json({ error: 'tag is required' }, { status: 400 });
  revalidateTag(tag, { expire: 0 });
  return Response.json({ revalidated: tag });
}
