// The time range the timeline shows, chosen on the minimap: pure maths
// (tests/js/range.test.mjs). As Jaeger UI's `viewRange.time.current`, a range is a pair of
// fractions of the trace's duration, {start, end} with 0 <= start < end <= 1; the minimap
// (minimap/render.js) owns the drag state, the timeline (timeline/render.js) reads the range.
import { niceTicks } from "../../common.js";

export const FULL = Object.freeze({ start: 0, end: 1 });
/** The narrowest range a drag can choose: 0.1 % of the trace. */
export const MIN_WIDTH = 0.001;

const clamp01 = (x) => Math.min(1, Math.max(0, Number.isFinite(x) ? x : 0));

/** Two fractions in either order as a range inside [0, 1], at least `minWidth` wide. */
export function normalizeRange(a, b, minWidth = MIN_WIDTH) {
  let start = Math.min(clamp01(a), clamp01(b));
  let end = Math.max(clamp01(a), clamp01(b));
  if (end - start < minWidth) {
    const middle = (start + end) / 2;
    start = Math.max(0, Math.min(middle - minWidth / 2, 1 - minWidth));
    end = start + minWidth;
  }
  return { start, end };
}

/** A drag on a strip `width` px wide, from x0 to x1 px (either way), as a range. */
export function rangeFromPixels(x0, x1, width, minWidth = MIN_WIDTH) {
  if (!(width > 0)) return FULL;
  return normalizeRange(x0 / width, x1 / width, minWidth);
}

/** The range moved by `delta` (a fraction of the trace), its width kept, inside [0, 1]. */
export function panRange(range, delta) {
  const width = range.end - range.start;
  const start = Math.min(Math.max(0, range.start + delta), 1 - width);
  return { start, end: start + width };
}

export function isFull(range) {
  return range.start <= 0 && range.end >= 1;
}

/** The range in trace-relative ns. */
export function rangeTimes(range, duration) {
  return { from: range.start * duration, to: range.end * duration };
}

/**
 * A span from `start` to `end` ns in the range's window, in percent of the window's width:
 * {left, width, visible, cutStart, cutEnd} — clipped to [0, 100]; `cut*` when it runs past
 * an edge; not `visible` when entirely outside.
 */
export function barGeometry(start, end, range, duration) {
  const { from, to } = rangeTimes(range, duration);
  const span = to - from;
  if (!(span > 0)) return { left: 0, width: 0, visible: false, cutStart: false, cutEnd: false };
  const visible = end >= from && start <= to;
  const left = (100 * (Math.max(start, from) - from)) / span;
  const right = (100 * (Math.min(end, to) - from)) / span;
  return {
    left: Math.min(Math.max(left, 0), 100),
    width: visible ? Math.max(0, right - left) : 0,
    visible,
    cutStart: start < from,
    cutEnd: end > to,
  };
}

/** A time (ns) as a percentage of the window's width (below 0 or past 100 outside it). */
export function project(time, range, duration) {
  const { from, to } = rangeTimes(range, duration);
  return to > from ? (100 * (time - from)) / (to - from) : 0;
}

/**
 * Round tick times inside the window: {step, ticks: [{time, percent}]}, times in
 * trace-relative ns (about `count` of them).
 */
export function rangeTicks(range, duration, count = 8) {
  const { from, to } = rangeTimes(range, duration);
  const { step } = niceTicks(to - from, count);
  const ticks = [];
  const first = Math.ceil(from / step - 1e-9) * step + 0; // + 0: never -0
  for (let time = first; time <= to + step * 1e-9; time += step) {
    ticks.push({ time, percent: project(time, range, duration) });
  }
  return { step, ticks };
}

/** "0.2500-0.5000" (as the page's URL keeps it) to a range; FULL when absent or malformed. */
export function parseRange(text) {
  const match = /^(\d*\.?\d+)-(\d*\.?\d+)$/.exec(String(text || ""));
  if (!match) return FULL;
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (!(start >= 0 && end <= 1 && end > start)) return FULL;
  return normalizeRange(start, end);
}

export function formatRange(range) {
  return `${range.start.toFixed(4)}-${range.end.toFixed(4)}`;
}
