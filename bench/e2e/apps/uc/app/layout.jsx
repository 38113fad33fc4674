export const metadata = { title: 'cachekit-next bench (use cache)' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
