export const revalidate = 3600;

export async function GET() {
  return Response.json({ id: Math.random().toString(36).slice(2, 10), at: Date.now() });
}
