'use server';

import { revalidatePath, revalidateTag, updateTag } from 'next/cache';

export async function updateX() {
  updateTag('x');
}

export async function staleX() {
  revalidateTag('x', 'max');
}

export async function expireXSoon() {
  revalidateTag('x', { expire: 1 });
}

export async function revalidatePaths() {
  revalidatePath('/api/x');
  revalidatePath('/tagged');
}
