'use server';

import { revalidatePath, revalidateTag, updateTag } from 'next/cache';

export async function expirePosts() {
  updateTag('posts');
}

export async function stalePosts() {
  revalidateTag('posts', 'max');
}

export async function refreshIsrPath() {
  revalidatePath('/isr');
}
