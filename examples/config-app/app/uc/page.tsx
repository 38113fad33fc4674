import { Suspense } from 'react';
import { connection } from 'next/server';

/** 'use cache' goes through cacheHandlers.default, 'use cache: remote' through cacheHandlers.remote. */
async function localComputation() {
  'use cache';
  return { id: Math.random().toString(36).slice(2, 10) };
}

async function remoteComputation() {
  'use cache: remote';
  return { id: Math.random().toString(36).slice(2, 10) };
}

/** Rendered per request (after `connection()`), so every read goes through the cache handlers at runtime. */
async function Values() {
  await connection();
  const [local, remote] = await Promise.all([localComputation(), remoteComputation()]);
  return (
    <>
      <p>render id: <span id="render-id">{Math.random().toString(36).slice(2, 10)}</span></p>
      <p>&apos;use cache&apos; id: <span id="uc-id">{local.id}</span></p>
      <p>&apos;use cache: remote&apos; id: <span id="remote-id">{remote.id}</span></p>
    </>
  );
}

export default function UseCachePage() {
  return (
    <main>
      <h1>&apos;use cache&apos;</h1>
      <Suspense fallback={<p>loading</p>}>
        <Values />
      </Suspense>
    </main>
  );
}
