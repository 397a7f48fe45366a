// The flame graph's tree and layout (trace_viewer/static/trace/flamegraph/layout.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  findNode,
  flameLayout,
  flameTree,
} from "../../trace_viewer/static/trace/flamegraph/layout.js";
import { buildModel } from "../../trace_viewer/static/trace/model.js";
import { FIXTURE_TRACE, MS, loadFixture } from "./fixtures.mjs";

const summary = (node) => [node.name, node.count, node.total / MS, node.self / MS];

test("siblings of one operation merge into one node, with their total and self time", () => {
  const { model } = loadFixture("concurrent-siblings");
  const tree = flameTree(model);
  assert.deepEqual(summary(tree), ["POST /reservations", 1, 30, 5]);
  assert.deepEqual(tree.children.map(summary), [
    ["audit", 1, 5, 5],
    ["check_stock", 3, 51, 45],
  ]);
  const check = tree.children[1];
  assert.equal(check.key, "0.1");
  assert.equal(check.errors, 1);
  assert.deepEqual(check.children.map(summary), [["SELECT stock", 3, 6, 6]]);
  assert.equal(findNode(tree, "0.1.0"), check.children[0]);
  assert.equal(findNode(tree, "0.7"), null);
});

test("children adding up to more than their parent are squeezed to fit under it", () => {
  const { model } = loadFixture("concurrent-siblings");
  const tree = flameTree(model);
  assert.equal(tree.squeezed, true, "56 ms of children under 30 ms");
  const items = flameLayout(tree);
  const at = (key) => items.find((i) => i.node.key === key);
  assert.deepEqual([at("0").x0, at("0").x1], [0, 1]);
  // Scaled by the children's 56 ms, not the parent's 30: they fill it, in order of start.
  assert.equal(at("0.0").x0, 0);
  assert.ok(Math.abs(at("0.0").x1 - 5 / 56) < 1e-12);
  assert.ok(Math.abs(at("0.1").x1 - 1) < 1e-12);
  // check_stock is not squeezed: its SELECTs take 6 of its 51 ms, at true scale.
  const select = at("0.1.0");
  assert.ok(Math.abs(select.x1 - select.x0 - ((51 / 56) * 6) / 51) < 1e-12);
  assert.equal(findNode(tree, "0.1").squeezed, false);
});

test("children inside their parent keep their true share; the rest is self time", () => {
  const { model } = loadFixture("overlapping-children");
  const items = flameLayout(flameTree(model));
  const widths = Object.fromEntries(items.map((i) => [i.node.name, i.x1 - i.x0]));
  assert.ok(Math.abs(widths.A - 0.3) < 1e-12 && Math.abs(widths.B - 0.3) < 1e-12);
  assert.ok(Math.abs(widths.C - 0.1) < 1e-12);
  assert.ok(Math.abs(widths.A1 - 0.05) < 1e-12);
});

test("zooming into a node: it fills the width, its ancestors above it, nothing else", () => {
  const { model } = loadFixture("concurrent-siblings");
  const tree = flameTree(model);
  const items = flameLayout(tree, { focus: "0.1" });
  assert.deepEqual(
    items.map((i) => [i.node.name, i.ancestor, i.x0, i.x1]),
    [
      ["POST /reservations", true, 0, 1],
      ["check_stock", false, 0, 1],
      ["SELECT stock", false, 0, 6 / 51],
    ],
  );
  assert.deepEqual(flameLayout(tree, { focus: "9.9" }), flameLayout(tree), "unknown: the top");
});

test("nodes narrower than the minimum width are left out, with their subtrees", () => {
  const { model } = loadFixture("concurrent-siblings");
  const items = flameLayout(flameTree(model), { minWidth: 0.1 });
  assert.deepEqual(
    items.map((i) => i.node.name),
    ["POST /reservations", "check_stock", "SELECT stock"],
  );
});

test("several top-level spans (orphans) get a virtual top node", () => {
  const otlp = (service, spanId, name, endMs, parentSpanId = "") => ({
    resource: { attributes: [{ key: "service.name", value: { stringValue: service } }] },
    scopeSpans: [
      {
        spans: [
          {
            traceId: FIXTURE_TRACE,
            spanId,
            parentSpanId,
            name,
            startTimeUnixNano: "0",
            endTimeUnixNano: String(endMs * MS),
          },
        ],
      },
    ],
  });
  const model = buildModel(FIXTURE_TRACE, [
    otlp("svc", "00000000000000aa", "late_callback", 20, "00000000000000ff"),
    otlp("other", "00000000000000bb", "root", 50),
  ]);
  const tree = flameTree(model);
  assert.equal(tree.service, null);
  assert.equal(tree.name, "trace");
  assert.equal(tree.total / MS, 70);
  assert.deepEqual(
    tree.children.map((c) => [c.name, c.key, c.depth]),
    [
      ["root", "0.0", 1], // both start at 0: the longer first, as in the timeline
      ["late_callback", "0.1", 1],
    ],
  );
});
