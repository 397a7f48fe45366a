// The service graph's model (trace_viewer/static/graph/model.js): /api/dependencies's links as
// nodes and edges, their labels and colours.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  buildGraph,
  edgeLabels,
  edgeStyle,
  fmtRate,
  STROKE,
} from "../../trace_viewer/static/graph/model.js";

const ORDER = "order-service";
const SERVICES = [ORDER, "inventory-service", "payment-service", "shipping-service"];
// The shape of GET /api/dependencies for five orders, two of whose charges were refused.
const LINKS = [
  { parent: ORDER, child: "inventory-service", callCount: 10, errorCount: 0, p99Ms: 12.5 },
  { parent: ORDER, child: "payment-service", callCount: 5, errorCount: 2, p99Ms: 40.125 },
  { parent: ORDER, child: "shipping-service", callCount: 6, errorCount: 0, p99Ms: 8 },
];

test("every link is an edge; every service in one is a node with its calls in and out", () => {
  const graph = buildGraph(LINKS, { services: SERVICES });
  assert.deepEqual(
    graph.edges.map((e) => [e.parent, e.child, e.calls, e.errors, e.p99Ms, e.errorRate]),
    [
      [ORDER, "inventory-service", 10, 0, 12.5, 0],
      [ORDER, "payment-service", 5, 2, 40.125, 0.4],
      [ORDER, "shipping-service", 6, 0, 8, 0],
    ],
  );
  assert.deepEqual(
    graph.nodes.map((n) => [n.name, n.kind, n.callsIn, n.failedIn, n.callsOut]),
    [
      ["inventory-service", "service", 10, 0, 0],
      [ORDER, "service", 0, 0, 21],
      ["payment-service", "service", 5, 2, 0],
      ["shipping-service", "service", 6, 0, 0],
    ],
  );
});

test("a callee with no spans of its own is one that never answered; a caller never is", () => {
  const links = [
    ...LINKS,
    { parent: ORDER, child: "127.0.0.1:8002", callCount: 3, errorCount: 3, p99Ms: 1 },
    { parent: "cron", child: ORDER, callCount: 1, errorCount: 0, p99Ms: 1 },
  ];
  const kinds = (graph) => Object.fromEntries(graph.nodes.map((n) => [n.name, n.kind]));
  const graph = buildGraph(links, { services: SERVICES });
  assert.equal(kinds(graph)["127.0.0.1:8002"], "unanswered");
  assert.equal(kinds(graph).cron, "service", "it called: it has spans, listed or not");
  // Without the list of services nothing can be told apart.
  assert.ok(Object.values(kinds(buildGraph(links))).every((k) => k === "service"));
});

test("the same edge twice (Jaeger's Elasticsearch store answers one a day) is merged", () => {
  const graph = buildGraph([
    { parent: "a", child: "b", callCount: 3, errorCount: 1, p99Ms: 20 },
    { parent: "a", child: "b", callCount: 7, errorCount: 0, p99Ms: 90 },
  ]);
  assert.deepEqual(
    graph.edges.map((e) => [e.calls, e.errors, e.p99Ms]),
    [[10, 1, 90]],
  );
});

test("Jaeger's own links (no errorCount, no p99Ms) give edges that say only their calls", () => {
  const graph = buildGraph([
    { parent: "frontend", child: "driver", callCount: 4 },
    { parent: "frontend", child: "driver", callCount: 2, errorCount: 1 },
  ]);
  const [edge] = graph.edges;
  assert.deepEqual([edge.calls, edge.errors, edge.errorRate, edge.p99Ms], [6, null, null, null]);
  assert.deepEqual(edgeLabels(edge), { calls: "6 calls", errors: null, p99: null });
  assert.equal(edgeStyle(edge, 6).errorClass, "err-unknown");
  assert.equal(graph.nodes.find((n) => n.name === "driver").failedIn, null);
});

test("malformed links are skipped and bad numbers are zero, never NaN", () => {
  const graph = buildGraph([
    null,
    { parent: "a" },
    { parent: 1, child: "b", callCount: 1 },
    { parent: "a", child: "b", callCount: "x", errorCount: -2, p99Ms: "NaN" },
    { parent: "a", child: "c", callCount: 2, errorCount: 5, p99Ms: -1 },
  ]);
  assert.deepEqual(
    graph.edges.map((e) => [e.child, e.calls, e.errors, e.errorRate, e.p99Ms]),
    [
      ["b", 0, 0, null, null],
      ["c", 2, 2, 1, null], // more failures than calls: all of them failed
    ],
  );
  assert.deepEqual(buildGraph(undefined), { nodes: [], edges: [] });
  assert.deepEqual(buildGraph({ data: [] }), { nodes: [], edges: [] });
});

test("a self-call is an edge from a service to itself", () => {
  const graph = buildGraph([{ parent: "a", child: "a", callCount: 2, errorCount: 0, p99Ms: 1 }]);
  assert.deepEqual(
    graph.edges.map((e) => e.self),
    [true],
  );
  assert.deepEqual(
    graph.nodes.map((n) => [n.name, n.callsIn, n.callsOut]),
    [["a", 2, 2]],
  );
});

test("the error rate is a share of the calls, never rounded to 0 or 100 %", () => {
  assert.equal(fmtRate(0, 12), "0 %");
  assert.equal(fmtRate(1, 12), "8.3 %");
  assert.equal(fmtRate(1, 2), "50 %");
  assert.equal(fmtRate(2, 3), "66.7 %");
  assert.equal(fmtRate(3, 3), "100 %");
  assert.equal(fmtRate(1, 5000), "<0.1 %");
  assert.equal(fmtRate(9999, 10000), "99.9 %");
  assert.equal(fmtRate(1, 0), "");
});

test("an edge's labels: calls, failures with their share, p99 in ms", () => {
  const [inventory, payment] = buildGraph(LINKS).edges;
  assert.deepEqual(edgeLabels(payment), {
    calls: "5 calls",
    errors: "2 failed · 40 %",
    p99: "p99 40.1 ms",
  });
  assert.deepEqual(edgeLabels(inventory), {
    calls: "10 calls",
    errors: "none failed",
    p99: "p99 12.5 ms",
  });
  const one = buildGraph([{ parent: "a", child: "b", callCount: 1, errorCount: 0, p99Ms: 1500 }]);
  assert.deepEqual(edgeLabels(one.edges[0]), {
    calls: "1 call",
    errors: "none failed",
    p99: "p99 1.50 s",
  });
});

test("an edge's colour steps up with its share of failures; its width with its calls", () => {
  const edge = (calls, errors) =>
    buildGraph([{ parent: "a", child: "b", callCount: calls, errorCount: errors, p99Ms: 1 }])
      .edges[0];
  const cls = (calls, errors) => edgeStyle(edge(calls, errors), 100).errorClass;
  assert.equal(cls(100, 0), "err-0");
  assert.equal(cls(10000, 1), "err-1", "one failure shows, however rare");
  assert.equal(cls(100, 4), "err-1");
  assert.equal(cls(100, 5), "err-2");
  assert.equal(cls(100, 24), "err-2");
  assert.equal(cls(100, 25), "err-3");
  assert.equal(cls(2, 2), "err-3");
  assert.equal(edgeStyle(edge(100, 0), 100).width, STROKE.max);
  assert.equal(edgeStyle(edge(0, 0), 100).width, STROKE.min);
  // A quarter of the busiest edge's calls: half way, by square root (to 0.1 px).
  assert.equal(edgeStyle(edge(25, 0), 100).width, 3.8);
  assert.equal((STROKE.min + STROKE.max) / 2, 3.75);
  assert.equal(edgeStyle(edge(1, 0), 0).width, STROKE.min, "no calls at all: no division");
});
