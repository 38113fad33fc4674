import { getUntaggedValue } from '../../data';

/** A static route handler over an untagged 'use cache' function with I/O inside; both calls share one entry. */
export async function GET() {
  const [first, second] = await Promise.all([getUntaggedValue(), getUntaggedValue()]);
  return Response.json({ first, second });
}
