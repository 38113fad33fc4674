export default function Home() {
  return <main>bench</main>;
}
