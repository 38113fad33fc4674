export const metadata = { title: 'cachekit-next bench (ISR)' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
