import { getRouteValue } from '../../data';

/** A prerendered route handler over a tagged 'use cache' function. */
export async function GET() {
  return Response.json(await getRouteValue());
}
