'use server';

import { revalidatePath, revalidateTag, updateTag } from 'next/cache';

export async function expireItems() {
  updateTag('items');
}

export async function staleItems() {
  revalidateTag('items', 'max');
}

export async function refreshUcPath() {
  revalidatePath('/uc');
}
