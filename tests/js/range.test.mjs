// The minimap's range maths (trace_viewer/static/trace/minimap/range.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  FULL,
  MIN_WIDTH,
  barGeometry,
  formatRange,
  isFull,
  normalizeRange,
  panRange,
  parseRange,
  project,
  rangeFromPixels,
  rangeTicks,
} from "../../trace_viewer/static/trace/minimap/range.js";

const close = (a, b) => Math.abs(a - b) < 1e-9;

test("a drag either way is one range inside the trace, at least the minimum width", () => {
  assert.deepEqual(rangeFromPixels(250, 500, 1000), { start: 0.25, end: 0.5 });
  assert.deepEqual(rangeFromPixels(500, 250, 1000), { start: 0.25, end: 0.5 }, "right to left");
  assert.deepEqual(rangeFromPixels(-40, 1200, 1000), FULL, "past both edges: clamped");
  const tiny = rangeFromPixels(500, 500.2, 1000);
  assert.ok(close(tiny.end - tiny.start, MIN_WIDTH) && close(tiny.start, 0.5001 - MIN_WIDTH / 2));
  const atEdge = normalizeRange(1, 1);
  assert.ok(close(atEdge.end, 1) && close(atEdge.start, 1 - MIN_WIDTH), "kept inside");
  assert.deepEqual(rangeFromPixels(0, 10, 0), FULL, "no width: the whole trace");
  assert.deepEqual(normalizeRange(Number.NaN, 0.5), { start: 0, end: 0.5 });
});

test("moving a range keeps its width and stops at the edges", () => {
  const r = { start: 0.2, end: 0.4 };
  const moved = panRange(r, 0.1);
  assert.ok(close(moved.start, 0.3) && close(moved.end, 0.5));
  assert.deepEqual(panRange(r, -1), { start: 0, end: 0.2 });
  const right = panRange(r, 5);
  assert.ok(close(right.start, 0.8) && close(right.end, 1));
  assert.ok(isFull(FULL) && !isFull(r));
});

test("a bar in the window: clipped at the edges, marked when cut, hidden outside", () => {
  const range = { start: 0.25, end: 0.5 }; // 25..50 of a 100 ns trace
  assert.deepEqual(barGeometry(30, 40, range, 100), {
    left: 20,
    width: 40,
    visible: true,
    cutStart: false,
    cutEnd: false,
  });
  const long = barGeometry(0, 100, range, 100);
  assert.deepEqual([long.left, long.width, long.cutStart, long.cutEnd], [0, 100, true, true]);
  const before = barGeometry(0, 10, range, 100);
  assert.deepEqual([before.visible, before.width], [false, 0]);
  assert.equal(barGeometry(60, 70, range, 100).visible, false);
  const full = barGeometry(10, 20, FULL, 200);
  assert.deepEqual([full.left, full.width], [5, 5]);
  assert.equal(barGeometry(0, 0, FULL, 0).visible, false, "a trace of no duration");
  assert.equal(project(75, range, 100), 200, "past the window's end");
});

test("ticks fall on round times inside the window, placed in it", () => {
  const { step, ticks } = rangeTicks({ start: 0.25, end: 0.5 }, 120e6, 8);
  assert.equal(step, 5e6);
  assert.deepEqual(
    ticks.map((t) => t.time / 1e6),
    [30, 35, 40, 45, 50, 55, 60],
  );
  assert.ok(ticks.every((t) => t.percent >= 0 && t.percent <= 100));
  assert.ok(close(ticks[0].percent, 0) && close(ticks[6].percent, 100));
  assert.deepEqual(
    rangeTicks(FULL, 120e6, 6).ticks.map((t) => t.time / 1e6),
    [0, 20, 40, 60, 80, 100, 120],
  );
});

test("a range survives the URL; anything malformed is the whole trace", () => {
  const range = { start: 0.25, end: 0.5 };
  assert.equal(formatRange(range), "0.2500-0.5000");
  assert.deepEqual(parseRange(formatRange(range)), range);
  for (const bad of ["", null, "0.5-0.25", "0.1-1.5", "a-b", "0.1", "-0.1-0.2"])
    assert.deepEqual(parseRange(bad), FULL, String(bad));
});
