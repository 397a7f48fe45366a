// The service graph's layered layout (trace_viewer/static/graph/layout.js): callers left of
// callees, cycles and self-calls, crossings, determinism, and no hang on a tangled graph.
import assert from "node:assert/strict";
import { test } from "node:test";

import { GEOMETRY, layoutGraph, smoothPath } from "../../trace_viewer/static/graph/layout.js";
import { buildGraph } from "../../trace_viewer/static/graph/model.js";

const link = (parent, child, callCount = 1, errorCount = 0) => ({
  parent,
  child,
  callCount,
  errorCount,
  p99Ms: 1,
});
const lay = (links, services) => layoutGraph(buildGraph(links, { services }));
const byName = (layout) => Object.fromEntries(layout.nodes.map((n) => [n.node.name, n]));
const edgeOf = (layout, parent, child) =>
  layout.edges.find((e) => e.edge.parent === parent && e.edge.child === child);

/** The first and the last point of an SVG path, [[x, y], [x, y]]. */
function ends(path) {
  const numbers = path.match(/-?\d+(\.\d+)?/g).map(Number);
  return [numbers.slice(0, 2), numbers.slice(-2)];
}

const ORDER = "order-service";
const ORDERSIM = [
  link(ORDER, "inventory-service", 10),
  link(ORDER, "payment-service", 5, 2),
  link(ORDER, "shipping-service", 6),
];

test("ordersim's graph: order-service left, its three callees in a column right of it", () => {
  const layout = lay(ORDERSIM);
  const nodes = byName(layout);
  assert.equal(layout.layers, 2);
  assert.equal(layout.crossings, 0);
  assert.deepEqual(
    Object.values(nodes).map((n) => [n.node.name, n.layer, n.row]),
    [
      ["inventory-service", 1, 0],
      [ORDER, 0, 0],
      ["payment-service", 1, 1],
      ["shipping-service", 1, 2],
    ],
  );
  const order = nodes[ORDER];
  // The caller is centred against its three callees.
  assert.equal(order.cy, nodes["payment-service"].cy);
  for (const name of ["inventory-service", "payment-service", "shipping-service"]) {
    const callee = nodes[name];
    assert.equal(callee.x, nodes["inventory-service"].x, "one column");
    assert.ok(callee.x - (order.x + order.width) >= GEOMETRY.layerGap);
    const edge = edgeOf(layout, ORDER, name);
    assert.equal(edge.kind, "forward");
    // From the caller's right side to the callee's left side, where the arrow is.
    assert.deepEqual(ends(edge.path), [
      [order.x + order.width, order.cy],
      [callee.x, callee.cy],
    ]);
    // The label sits between them, half way.
    assert.ok(edge.label.x > order.x + order.width && edge.label.x < callee.x);
    assert.equal(edge.label.y, (order.cy + callee.cy) / 2);
    assert.equal(edge.label.align, "middle");
  }
  // Rows far enough apart that three-line labels half way along do not overlap.
  const gap = nodes["payment-service"].cy - nodes["inventory-service"].cy;
  assert.ok(gap / 2 >= GEOMETRY.labelHeight, `${gap}`);
  assert.ok(layout.width >= nodes["shipping-service"].x + nodes["shipping-service"].width);
  assert.ok(layout.height >= nodes["shipping-service"].y + GEOMETRY.nodeHeight);
});

test("a service's layer is its longest path from a root; a long edge passes between", () => {
  const layout = lay([link("r", "a"), link("a", "b"), link("r", "b")]);
  const nodes = byName(layout);
  assert.deepEqual(
    ["r", "a", "b"].map((n) => nodes[n].layer),
    [0, 1, 2],
  );
  const long = edgeOf(layout, "r", "b");
  // Across a's column in a straight line (through its layer's virtual point), not through a.
  assert.match(long.path, / L/);
  const [start, end] = ends(long.path);
  assert.deepEqual(start, [nodes.r.x + nodes.r.width, nodes.r.cy]);
  assert.deepEqual(end, [nodes.b.x, nodes.b.cy]);
  const straight = / L(-?[\d.]+),(-?[\d.]+)/.exec(long.path);
  assert.notEqual(Number(straight[2]), nodes.a.cy, "the virtual point is in a row of its own");
  // Its label is in the last gap, next to the callee, clear of a.
  assert.ok(long.label.x > nodes.a.x + nodes.a.width && long.label.x < nodes.b.x);
});

test("a cycle is broken: one edge is drawn backwards, from the caller to the callee", () => {
  const layout = lay([link("r", "a"), link("a", "b"), link("b", "c"), link("c", "a", 2, 1)]);
  const nodes = byName(layout);
  assert.deepEqual(
    ["r", "a", "b", "c"].map((n) => nodes[n].layer),
    [0, 1, 2, 3],
  );
  const back = edgeOf(layout, "c", "a");
  assert.equal(back.kind, "back");
  assert.deepEqual(
    layout.edges.filter((e) => e.kind === "back").map((e) => e.edge.id),
    [back.edge.id],
  );
  // The path still runs from the caller c (its left side) to the callee a (its right side).
  const [start, end] = ends(back.path);
  assert.equal(start[0], nodes.c.x);
  assert.equal(end[0], nodes.a.x + nodes.a.width);
  // Its label is next to the callee, a.
  assert.ok(back.label.x > nodes.a.x + nodes.a.width && back.label.x < nodes.b.x);
});

test("two services calling each other (no root): two edges apart, labels above and below", () => {
  const layout = lay([link("a", "b", 3), link("b", "a", 1)]);
  const nodes = byName(layout);
  assert.deepEqual([nodes.a.layer, nodes.b.layer], [0, 1]);
  const forward = edgeOf(layout, "a", "b");
  const back = edgeOf(layout, "b", "a");
  assert.deepEqual([forward.kind, back.kind], ["forward", "back"]);
  const [fStart] = ends(forward.path);
  const [, bEnd] = ends(back.path);
  assert.ok(fStart[1] < nodes.a.cy && bEnd[1] > nodes.a.cy, "one above the middle, one below");
  assert.deepEqual([forward.label.align, back.label.align], ["above", "below"]);
  assert.ok(forward.label.y < back.label.y);
});

test("a self-call is a loop above its service, with room for its label", () => {
  const layout = lay([link("a", "a", 4), link("a", "b"), link("a", "c")]);
  const nodes = byName(layout);
  const loop = edgeOf(layout, "a", "a");
  assert.equal(loop.kind, "self");
  const [start, end] = ends(loop.path);
  assert.equal(start[1], nodes.a.y);
  assert.equal(end[1], nodes.a.y);
  assert.ok(start[0] > nodes.a.x && end[0] < nodes.a.x + nodes.a.width && start[0] < end[0]);
  assert.equal(loop.label.align, "above");
  assert.ok(loop.label.y < nodes.a.y);
  // The label's box (above its point) stays inside the picture, and clear of the row above.
  assert.ok(loop.label.y - GEOMETRY.labelHeight >= 0);
  assert.ok(
    nodes.c.y - (nodes.b.y + GEOMETRY.nodeHeight) >= GEOMETRY.loopHeight + GEOMETRY.labelHeight,
  );
  assert.equal(nodes.a.layer, 0, "a self-call makes no layer");
});

test("a callee that never answered is a node right of its caller", () => {
  const services = [ORDER, "inventory-service"];
  const layout = lay(
    [link(ORDER, "inventory-service"), link(ORDER, "127.0.0.1:8002", 2, 2)],
    services,
  );
  const nodes = byName(layout);
  assert.equal(nodes["127.0.0.1:8002"].node.kind, "unanswered");
  assert.equal(nodes["127.0.0.1:8002"].layer, 1);
});

test("the barycentre ordering takes crossings away, and keeps the unavoidable ones", () => {
  // In name order, a→d and b→c cross; with d above c they do not.
  const layout = lay([link("a", "d"), link("b", "c")]);
  const nodes = byName(layout);
  assert.equal(layout.crossings, 0);
  assert.ok(nodes.d.row < nodes.c.row);
  // Deeper: x calls q and p's callee r, y calls p; in name order p q / r s.
  const deeper = lay([link("x", "q"), link("y", "p"), link("q", "s"), link("p", "r")]);
  assert.equal(deeper.crossings, 0);
  // Two callers calling the same two callees cross once, whatever the order.
  assert.equal(lay([link("a", "c"), link("a", "d"), link("b", "c"), link("b", "d")]).crossings, 1);
});

test("the same links in any order give the same layout", () => {
  const links = [
    ...ORDERSIM,
    link("gateway", ORDER, 21),
    link("payment-service", "bank", 5, 1),
    link("bank", "payment-service", 1),
    link("inventory-service", "inventory-service", 3),
    link("shipping-service", "carrier:443", 2, 2),
  ];
  const services = [
    "gateway",
    ORDER,
    "inventory-service",
    "payment-service",
    "shipping-service",
    "bank",
  ];
  const expected = JSON.stringify(lay(links, services));
  let seed = 7;
  const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  for (let i = 0; i < 20; i += 1) {
    const shuffled = [...links].sort(() => random() - 0.5);
    assert.equal(JSON.stringify(lay(shuffled, [...services].reverse())), expected);
  }
});

test("a tangled graph of cycles and self-calls is laid out, quickly and completely", () => {
  const n = 60;
  const links = [];
  for (let i = 0; i < n; i += 1) {
    const name = (k) => `svc-${String(k % n).padStart(2, "0")}`;
    links.push(link(name(i), name(i * 7 + 3)), link(name(i), name(i * 13 + 5)));
    if (i % 5 === 0) links.push(link(name(i), name(i)));
  }
  const layout = lay(links);
  assert.equal(layout.nodes.length, n);
  const slots = new Set(layout.nodes.map((v) => `${v.layer}/${v.row}`));
  assert.equal(slots.size, n, "no two services in one place");
  const nodes = byName(layout);
  for (const e of layout.edges) {
    const [from, to] = [nodes[e.edge.parent], nodes[e.edge.child]];
    if (e.kind === "forward") assert.ok(from.layer < to.layer, e.edge.id);
    if (e.kind === "back") assert.ok(from.layer > to.layer, e.edge.id);
    if (e.kind === "self") assert.equal(from, to);
    assert.ok(!e.path.includes("NaN") && Number.isFinite(e.label.x) && Number.isFinite(e.label.y));
  }
  assert.equal(layout.edges.length, new Set(links.map((l) => `${l.parent}>${l.child}`)).size);
  assert.ok(layout.edges.some((e) => e.kind === "back"));
  assert.ok(Number.isFinite(layout.width) && Number.isFinite(layout.height));
});

test("no links, no picture", () => {
  assert.deepEqual(lay([]), {
    width: 0,
    height: 0,
    layers: 0,
    crossings: 0,
    nodes: [],
    edges: [],
  });
});

test("a path leaves and arrives horizontally, straight where it does not climb", () => {
  assert.equal(
    smoothPath([
      [0, 10],
      [100, 50],
    ]),
    "M0,10 C50,10 50,50 100,50",
  );
  assert.equal(
    smoothPath([
      [0, 10],
      [40, 10],
      [100, 50],
    ]),
    "M0,10 L40,10 C70,10 70,50 100,50",
  );
});
