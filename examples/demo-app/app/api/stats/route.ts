import { readStats } from '../../stats';

export const dynamic = 'force-dynamic';

/** Polled by the front page every 1.5 s. */
export function GET() {
  return Response.json(readStats());
}
