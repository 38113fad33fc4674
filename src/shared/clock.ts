/**
 * The one clock of this package: wall-clock milliseconds read as `performance.timeOrigin + performance.now()`.
 *
 * Why not `Date.now()`: while Next.js prerenders with Cache Components (at build, and when it regenerates a route in
 * the background) it patches `Date` and treats any clock read outside a 'use cache' scope as dynamic I/O, aborting
 * the render ("Route /x couldn't be rendered statically because it used Date.now()"). Every handler path can run
 * inside such a render, so nothing in `src/` reads `Date` for the time: a test keeps it so. Next's own default
 * cache handler reads the clock the same way.
 *
 * On Linux `performance.now()` is CLOCK_MONOTONIC, which NTP slews like the wall clock but never steps: the value
 * differs from `Date.now()` only by wall-clock steps since the process started (a VM resumed, a clock set by hand).
 */
export function nowMs(): number {
  return TIME_ORIGIN + performance.now();
}

// Fixed for the process's life; its getter costs more than `performance.now()` itself (every L1 hit reads the clock).
const TIME_ORIGIN = performance.timeOrigin;

/** `nowMs()` in whole unix seconds (memcached expiry, file headers). */
export function nowSeconds(): number {
  return Math.floor(nowMs() / 1000);
}
