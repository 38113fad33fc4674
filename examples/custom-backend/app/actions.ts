'use server';

import { revalidateTag } from 'next/cache';

/** Expires the page, the fetch and the cache(fn) entry tagged 'upstream', on every instance. */
export async function revalidateUpstream() {
  // `expire: 0`: the next request renders anew ('max' would serve the old page once while regenerating it).
  revalidateTag('upstream', { expire: 0 });
}
