/** A V8 .cpuprofile (node --cpu-prof) summarised as a table: where the time went, per operation. */
import path from 'node:path';
import { markdownTable } from './support.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Where a frame's code lives: a package, Node itself, V8's pseudo-frames, or the benchmark bundle (src/ inlined). */
function areaOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : 'V8 builtins';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'Node internals';
  if (url.includes('/.next')) return "the app's server chunks (.next/)";
  return 'cachekit-next (src/, bundled)';
}

/**
 * Self time by area and the `top` frames by self time, both in µs per operation (`ops` operations in the profile),
 * with the share of the sampled time. `wallUs`: the wall time per operation measured outside, for the idle share.
 */
export function summariseProfile(profile: CpuProfile, ops: number, wallUs: number, top = 14, window?: { fromEndUs: number; toEndUs: number }): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    // Only the samples of the window (counted back from the profile's end), e.g. the measured load.
    if (window && (at < profile.endTime - window.fromEndUs || at > profile.endTime - window.toEndUs)) return;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const areas = new Map<string, number>();
  const frames = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber, columnNumber } = byId.get(id)!.callFrame;
    const name = functionName || '(anonymous)';
    areas.set(areaOf(url, name), (areas.get(areaOf(url, name)) ?? 0) + us);
    const frame = url ? `${name} (${path.basename(url)}:${lineNumber + 1}:${columnNumber + 1})` : name;
    frames.set(frame, (frames.get(frame) ?? 0) + us);
  }
  const rows = (map: Map<string, number>, limit: number) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, us]) => [name, (us / ops).toFixed(1), `${((us / total) * 100).toFixed(1)}%`]);
  return [
    `Sampled ${(total / 1000).toFixed(0)} ms over ${ops} operations (${(total / ops).toFixed(0)} µs each, of ${wallUs.toFixed(0)} µs wall per operation); "(idle)": waiting (on Redis, on the network).`,
    '',
    markdownTable(['area (self time)', 'µs per op', 'share'], rows(areas, 12)),
    '',
    markdownTable(['frame (self time)', 'µs per op', 'share'], rows(frames, top)),
  ].join('\n');
}
