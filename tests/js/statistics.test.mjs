// Trace statistics and self time (trace_viewer/static/trace/statistics/compute.js): the
// self-time edge cases of Jaeger UI's tableValues tests — overlapping children, children longer
// than their parent, children outside it — on the fixture traces.
import assert from "node:assert/strict";
import { test } from "node:test";

import { criticalPath } from "../../trace_viewer/static/trace/critical-path/compute.js";
import {
  COLUMNS,
  coveredTime,
  selfTime,
  sortStatistics,
  traceStatistics,
} from "../../trace_viewer/static/trace/statistics/compute.js";
import { MS, loadFixture } from "./fixtures.mjs";

const selfMs = (model, id) => selfTime(model.byId.get(id)) / MS;

test("covered time counts overlaps once and ignores empty intervals", () => {
  const i = (start, end) => ({ start, end });
  assert.equal(coveredTime([i(10, 40), i(30, 60), i(70, 80)]), 60);
  assert.equal(coveredTime([i(0, 100), i(10, 20)]), 100, "one inside another");
  assert.equal(coveredTime([i(5, 5), i(9, 3)]), 0);
  assert.equal(coveredTime([]), 0);
});

test("overlapping children: self time is what no child covers", () => {
  const { model, id } = loadFixture("overlapping-children");
  assert.equal(selfMs(model, id("1")), 40, "100 - |10..60| - |70..80|");
  assert.equal(selfMs(model, id("2")), 25, "A: 30 less A1's 5");
  assert.equal(selfMs(model, id("3")), 30, "a leaf: all of it");
});

test("a child longer than its parent counts only up to the parent's end", () => {
  const { model, id } = loadFixture("child-longer-than-parent");
  assert.equal(selfMs(model, id("2")), 10, "S: 40 less L clipped to 20..50");
  assert.equal(selfMs(model, id("3")), 60, "L itself keeps its whole duration");
  assert.equal(selfMs(model, id("1")), 50, "R: 100 less 10..50 and 85..95");
});

test("children outside the parent, or starting before it, are clipped to it", () => {
  const { model, id } = loadFixture("child-outside-parent");
  assert.equal(selfMs(model, id("2")), 18, "S: 20 less early's 10..12; X is after S ended");
  assert.ok([...model.spans].every((s) => selfTime(s) >= 0 && selfTime(s) <= s.duration));
});

test("one row per service and operation: count, total, min/avg/max, self, critical path", () => {
  const { model } = loadFixture("concurrent-siblings");
  const rows = traceStatistics(model, { critical: criticalPath(model) });
  const row = (op) => rows.find((r) => r.operation === op);
  assert.deepEqual(
    rows.map((r) => [r.service, r.operation]),
    [
      ["order", "POST /reservations"],
      ["order", "audit"],
      ["inventory", "check_stock"],
      ["inventory", "SELECT stock"],
    ],
    "in order of appearance",
  );
  const check = row("check_stock");
  assert.equal(check.count, 3);
  assert.equal(check.errors, 1);
  assert.equal(check.total / MS, 51);
  assert.equal(check.min / MS, 13);
  assert.equal(check.max / MS, 20);
  assert.equal(check.avg / MS, 17);
  assert.equal(check.selfTotal / MS, 51 - 6, "each less its 2 ms SELECT");
  assert.equal(check.selfMin / MS, 11);
  assert.equal(check.selfMax / MS, 18);
  assert.equal(check.selfAvg / MS, 15);
  assert.equal(check.selfPercent, (100 * 45) / 30, "of the trace's 30 ms: above 100 when concurrent");
  assert.equal(check.critical / MS, 18, "5..6 and 8..25 of the one that finished last");
  assert.equal(check.slowest, "0000000000000003");
  assert.equal(check.spanIds.length, 3);
  assert.equal(row("POST /reservations").selfTotal / MS, 30 - 25, "0..25 covered");
});

test("grouped by service, the rows add up the service's spans", () => {
  const { model } = loadFixture("concurrent-siblings");
  const rows = traceStatistics(model, { groupBy: "service" });
  assert.deepEqual(
    rows.map((r) => [r.service, r.operation, r.count, r.total / MS]),
    [
      ["order", null, 2, 35],
      ["inventory", null, 6, 57],
    ],
  );
  assert.equal(rows[1].critical, 0, "no critical path given");
});

test("sorting by any column, either way, ties by name", () => {
  const { model } = loadFixture("concurrent-siblings");
  const rows = traceStatistics(model);
  const ops = (sorted) => sorted.map((r) => r.operation);
  assert.deepEqual(ops(sortStatistics(rows, "selfTotal", "desc")), [
    "check_stock",
    "SELECT stock",
    "audit", // 5 ms each: a tie, by name
    "POST /reservations",
  ]);
  assert.deepEqual(ops(sortStatistics(rows, "count", "asc")).slice(0, 2), [
    "audit", // one each: by name
    "POST /reservations",
  ]);
  assert.deepEqual(ops(sortStatistics(rows, "operation", "asc")), [
    "audit",
    "check_stock",
    "POST /reservations",
    "SELECT stock",
  ]);
  assert.deepEqual(ops(sortStatistics(rows, "service", "desc")).slice(0, 2), [
    "audit",
    "POST /reservations",
  ]);
  assert.deepEqual(ops(rows)[0], "POST /reservations", "the input is left as it was");
  for (const column of COLUMNS) assert.equal(sortStatistics(rows, column.key).length, 4);
});
