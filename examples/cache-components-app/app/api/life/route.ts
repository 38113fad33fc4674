import { getLifeValue } from '../../data';

/** A static route handler whose 'use cache' value lives { stale: 1, revalidate: 2, expire: 400 }. */
export async function GET() {
  return Response.json(await getLifeValue());
}
