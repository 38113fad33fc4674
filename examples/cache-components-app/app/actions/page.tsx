import { expireXSoon, revalidatePaths, staleX, updateX } from './actions';

/** Server Actions on the tag `x` and the paths that read it. */
export default function ActionsPage() {
  return (
    <main>
      <form action={updateX}>
        <button id="update-tag" type="submit">updateTag(x)</button>
      </form>
      <form action={staleX}>
        <button id="revalidate-tag-max" type="submit">revalidateTag(x, max)</button>
      </form>
      <form action={expireXSoon}>
        <button id="revalidate-tag-expire" type="submit">revalidateTag(x, {'{ expire: 1 }'})</button>
      </form>
      <form action={revalidatePaths}>
        <button id="revalidate-path" type="submit">revalidatePath(/api/x, /tagged)</button>
      </form>
    </main>
  );
}
