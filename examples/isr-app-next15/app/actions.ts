'use server';

import { revalidatePath, revalidateTag } from 'next/cache';

// Next 15.5 has neither updateTag nor revalidateTag(tag, profile): both buttons expire the tag now.
export async function expirePosts() {
  revalidateTag('posts');
}

export async function stalePosts() {
  revalidateTag('posts');
}

export async function refreshIsrPath() {
  revalidatePath('/isr');
}
