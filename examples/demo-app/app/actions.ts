'use server';

import { revalidatePath, updateTag } from 'next/cache';

// Next re-renders the page in the action's response: the expired loader shows "miss" right away.

export async function revalidateCatalog() {
  updateTag('catalog');
}

export async function revalidateHome() {
  revalidatePath('/');
}
