// Two traces merged into one tree (trace_viewer/static/compare/diff.js), against the fixtures
// ordersim trace diff (ordersim/trace_diff.py, tests/test_trace_diff.py) is checked against:
// one set of rules, two implementations, the same expected rows.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  comparePoints,
  deltaScale,
  diffTraces,
  differs,
  visibleRows,
} from "../../trace_viewer/static/compare/diff.js";
import { buildModel } from "../../trace_viewer/static/trace/model.js";
import { MS } from "./fixtures.mjs";

/** tests/fixtures/trace_diff/<name>.json, shared with the Python tests. */
function shared(name) {
  const url = new URL(`../fixtures/trace_diff/${name}.json`, import.meta.url);
  return JSON.parse(readFileSync(url, "utf8"));
}

function model(name) {
  const body = shared(name);
  const traceId = body.result.resourceSpans[0].scopeSpans[0].spans[0].traceId;
  return buildModel(traceId, body.result.resourceSpans);
}

/** The rows in expected.json's shape. */
function rows(diff) {
  return diff.rows.map((node) => ({
    depth: node.depth,
    service: node.service,
    operation: node.operation,
    presence: node.presence,
    countA: node.countA,
    countB: node.countB,
    totalANs: node.totalA,
    totalBNs: node.totalB,
  }));
}

test("spans are matched by their path with counts: exactly the rows of expected.json", () => {
  const diff = diffTraces(model("a"), model("b"));
  assert.deepEqual(rows(diff), shared("expected").rows);
  assert.deepEqual(diff.counts, { both: 6, only_a: 1, only_b: 2 });
});

test("the edge cases give exactly the rows of edge-expected.json", () => {
  // Siblings starting together in code-point order, a missing parent, a repeated span id, an
  // empty service name, a node only in B placed by its start in B.
  const diff = diffTraces(model("edge-a"), model("edge-b"));
  assert.deepEqual(rows(diff), shared("edge-expected").rows);
});

test("concurrent siblings of one name are one node, whatever order they ran in", () => {
  const diff = diffTraces(model("a"), model("b"));
  const [check] = diff.rows.filter((n) => n.operation === "check_stock");
  assert.deepEqual([check.countA, check.countB, check.presence], [2, 3, "both"]);
  assert.equal(check.delta, 42 * MS);
  // B's three started in another order than their ids: each is in the node once.
  assert.deepEqual(check.b.map((s) => s.id).sort(), [
    "b000000000000007",
    "b000000000000008",
    "b00000000000000a",
  ]);
});

test("swapping the traces swaps only-A and only-B, the counts and the sign of the difference", () => {
  const forward = diffTraces(model("a"), model("b"));
  const backward = diffTraces(model("b"), model("a"));
  const flip = { both: "both", only_a: "only_b", only_b: "only_a" };
  const byKey = new Map(backward.rows.map((n) => [n.key, n]));
  assert.equal(backward.rows.length, forward.rows.length);
  for (const node of forward.rows) {
    const other = byKey.get(node.key);
    assert.equal(other.presence, flip[node.presence]);
    assert.deepEqual([other.countA, other.countB], [node.countB, node.countA]);
    assert.equal(other.delta, -node.delta);
  }
});

test("a trace against itself is all in both, with no difference", () => {
  const diff = diffTraces(model("a"), model("a"));
  assert.ok(diff.rows.every((n) => n.presence === "both" && n.delta === 0));
  assert.ok(diff.rows.every((n) => n.scale.direction === "same" && !differs(n)));
  assert.deepEqual(visibleRows(diff, { changedOnly: true }), []);
});

test("errors are counted on each side", () => {
  const diff = diffTraces(model("a"), model("b"));
  const charge = diff.rows.find((n) => n.operation === "charge_payment");
  assert.deepEqual([charge.errorsA, charge.errorsB], [0, 1]);
});

test("the colour scale steps at 10 %, 1.5× and 2× of the larger total, each way", () => {
  const scale = (a, b) => {
    const { direction, step } = deltaScale({ presence: "both", totalA: a, totalB: b });
    return `${direction}-${step}`;
  };
  assert.equal(scale(100, 100), "same-0");
  assert.equal(scale(100, 109), "same-0");
  assert.equal(scale(100, 112), "slower-1");
  assert.equal(scale(100, 149), "slower-1");
  assert.equal(scale(100, 150), "slower-2");
  assert.equal(scale(100, 200), "slower-3");
  assert.equal(scale(100, 400), "slower-3");
  assert.equal(scale(200, 100), "faster-3");
  assert.equal(scale(150, 100), "faster-2");
  assert.equal(scale(112, 100), "faster-1");
  assert.equal(scale(0, 0), "same-0");
  assert.equal(scale(0, 5), "slower-3");
  assert.deepEqual(deltaScale({ presence: "only_a", totalA: 5, totalB: 0 }), {
    direction: null,
    step: 0,
    share: 0,
  });
  // The fixture: POST /orders went from 100 to 400 ms, reserve_stock 38 → 88, check_stock
  // 22 → 64 (all 2× or more).
  const diff = diffTraces(model("a"), model("b"));
  const steps = Object.fromEntries(
    diff.rows.map((n) => [n.operation, `${n.scale.direction}-${n.scale.step}`]),
  );
  assert.equal(steps["POST /orders"], "slower-3");
  assert.equal(steps.check_stock, "slower-3");
  assert.equal(steps.quote_shipping, "null-0");
});

test("only the differences: the rows that differ and their ancestors, in tree order", () => {
  const diff = diffTraces(model("a"), model("b"));
  const all = visibleRows(diff);
  assert.equal(all, diff.rows);
  const a = model("a");
  // A against a copy of itself where one leaf is 3× longer: that leaf and its ancestors.
  const b = model("a");
  const leaf = b.spans.find((s) => s.id === "a000000000000008");
  leaf.endAbs += BigInt(24 * MS);
  const changed = visibleRows(diffTraces(a, b), { changedOnly: true });
  assert.deepEqual(
    changed.map((n) => [n.depth, n.operation]),
    [
      [0, "POST /orders"],
      [1, "place_order"],
      [2, "reserve_stock"],
      [3, "POST /reservations"],
      [4, "POST /reservations"],
      [5, "check_stock"],
    ],
  );
});

test("names compare in code points, as Python compares them", () => {
  assert.ok(comparePoints("Zeta", "alpha") < 0);
  assert.ok(comparePoints("\uff21", "\u{1d518}") < 0, "U+FF21 before U+1D518");
  assert.ok("\uff21" > "\u{1d518}", "which UTF-16 code units would put the other way round");
  assert.ok(comparePoints("ab", "abc") < 0);
  assert.equal(comparePoints("x", "x"), 0);
});
