/**
 * Preloaded into `next start` by e2e specs (NODE_OPTIONS=--require): prints every prerender that Next aborts for
 * synchronous I/O (a clock read or random draw outside 'use cache'; Next's own io() does the aborting). Next 16.4
 * swallows such an abort in a route handler's background regeneration where 16.2 answered 500, so the specs read the
 * abort itself. Observes only: the abort goes ahead unchanged.
 */
'use strict';
const abort = AbortController.prototype.abort;
AbortController.prototype.abort = function probedAbort(reason) {
  if (!this.signal.aborted && reason instanceof Error && /bail out of prerendering at this point because it used/.test(reason.message)) {
    const frames = (new Error().stack || '').split('\n').slice(2, 14).join('\n');
    console.error(`[prerender-probe] ${reason.message}\n${frames}`);
  }
  return abort.call(this, reason);
};
