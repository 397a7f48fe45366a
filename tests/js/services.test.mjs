// Unit tests of the Services page's model (trace_viewer/static/services/model.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  byService,
  exemplarUrl,
  fmtEstimate,
  fmtPercent,
  fmtRate,
  linePath,
  scales,
  searchUrl,
} from "../../trace_viewer/static/services/model.js";

test("rows are grouped by service, services and operations in name order", () => {
  const rows = [
    { service: "payment-service", operation: "POST /charges" },
    { service: "inventory-service", operation: "POST /reservations" },
    { service: "inventory-service", operation: "GET /products" },
  ];
  assert.deepEqual(
    byService(rows).map((g) => [g.service, g.operations.map((o) => o.operation)]),
    [
      ["inventory-service", ["GET /products", "POST /reservations"]],
      ["payment-service", ["POST /charges"]],
    ],
  );
});

test("an operation searches its traces, an exemplar opens its trace at its span", () => {
  const row = { service: "order-service", operation: "POST /orders" };
  assert.equal(searchUrl(row, "15m"), "/?service=order-service&operation=POST+%2Forders&lookback=15m");
  assert.equal(searchUrl(row, "bogus"), "/?service=order-service&operation=POST+%2Forders&lookback=5m");
  assert.equal(exemplarUrl({ trace_id: "ab".repeat(16), span_id: "cd".repeat(8) }), `/trace/${"ab".repeat(16)}#span=${"cd".repeat(8)}`);
});

test("the chart's scales span the lookback and zero to the top value", () => {
  const s = scales(1000, 1000, [0, 5, null, 10], { width: 108, height: 58, pad: 4 });
  assert.equal(s.top, 10);
  assert.deepEqual([s.x(0), s.x(500), s.x(1000)], [4, 54, 104]);
  assert.deepEqual([s.y(0), s.y(10)], [54, 4]);
  assert.equal(scales(1000, 1000, [null, 0], { width: 10, height: 10 }).top, 1);
});

test("a line breaks where a step had no requests", () => {
  const s = scales(30, 30, [1, 2], { width: 34, height: 14, pad: 2 });
  const series = [
    { time_ms: 0, p50: 1 },
    { time_ms: 10, p50: null },
    { time_ms: 20, p50: 2 },
    { time_ms: 30, p50: 2 },
  ];
  assert.equal(linePath(series, "p50", s), "M2.0,7.0M22.0,2.0L32.0,2.0");
  assert.equal(linePath([], "p50", s), "");
});

test("cells say rates, percentages and estimates", () => {
  assert.deepEqual([fmtRate(20), fmtRate(0.5), fmtRate(0.01)], ["20.0/s", "0.50/s", "0.010/s"]);
  assert.deepEqual([fmtPercent(0), fmtPercent(0.005), fmtPercent(0.25)], ["0 %", "0.50 %", "25.0 %"]);
  assert.deepEqual([fmtEstimate(null), fmtEstimate(7.25), fmtEstimate(250)], ["–", "≈7.25 ms", "≈250 ms"]);
});
