// The critical path (trace_viewer/static/trace/critical-path/compute.js) on the fixture traces.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  criticalPath,
  mergeSegments,
  pathTime,
} from "../../trace_viewer/static/trace/critical-path/compute.js";
import { MS, loadFixture } from "./fixtures.mjs";

const ms = (list) => list.map(({ start, end }) => [start / MS, end / MS]);

test("overlapping children: the path walks back from the end, latest-finishing child first", () => {
  const { model, id } = loadFixture("overlapping-children");
  const path = criticalPath(model);
  assert.deepEqual(ms(path.get(id("1"))), [
    [0, 30],
    [60, 70],
    [80, 100],
  ]);
  assert.deepEqual(ms(path.get(id("4"))), [[70, 80]], "C");
  assert.deepEqual(ms(path.get(id("3"))), [[30, 60]], "B, finishing last before C started");
  assert.equal(path.has(id("2")), false, "A overlaps B and finishes earlier: off the path");
  assert.equal(path.has(id("5")), false);
  const total = [...path.values()].reduce((n, segs) => n + pathTime(segs), 0);
  assert.equal(total, model.duration, "the path covers the trace end to end, once");
});

test("a child that outlives its parent is on the path only up to the parent's end", () => {
  const { model, id } = loadFixture("child-longer-than-parent");
  const path = criticalPath(model);
  assert.deepEqual(ms(path.get(id("3"))), [[20, 50]], "L, clipped to S");
  assert.deepEqual(ms(path.get(id("2"))), [[10, 20]], "S before L started");
  assert.deepEqual(ms(path.get(id("4"))), [[85, 95]], "T");
  assert.deepEqual(ms(path.get(id("1"))), [
    [0, 10],
    [50, 85],
    [95, 100],
  ]);
});

test("a child entirely outside its parent is not on the path", () => {
  const { model, id } = loadFixture("child-outside-parent");
  const path = criticalPath(model);
  assert.equal(path.has(id("3")), false);
  assert.equal(path.has(id("5")), false);
  assert.deepEqual(ms(path.get(id("4"))), [[10, 12]], "early, cut to S's start");
  assert.deepEqual(ms(path.get(id("2"))), [[12, 30]]);
  assert.deepEqual(ms(path.get(id("1"))), [
    [0, 10],
    [30, 100],
  ]);
});

test("concurrent siblings: only the one finishing last is on the path", () => {
  const { model, id } = loadFixture("concurrent-siblings");
  const path = criticalPath(model);
  assert.deepEqual(ms(path.get(id("3"))), [
    [5, 6],
    [8, 25],
  ]);
  assert.equal(path.has(id("4")), false);
  assert.equal(path.has(id("5")), false);
  assert.deepEqual(ms(path.get(id("6"))), [[6, 8]]);
});

test("segments closer than the gap merge into one band; others stay apart", () => {
  const segments = [
    { start: 50, end: 60 },
    { start: 0, end: 10 },
    { start: 10.5, end: 20 },
  ];
  assert.deepEqual(mergeSegments(segments, 1), [
    { start: 0, end: 20 },
    { start: 50, end: 60 },
  ]);
  assert.deepEqual(mergeSegments(segments, 0).length, 3);
  assert.equal(segments[1].end, 10, "the input is left as it was");
  assert.deepEqual(mergeSegments(undefined, 1), []);
  assert.equal(pathTime(segments), 29.5);
});
