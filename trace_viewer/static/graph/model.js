// The service graph's model: the links of GET /api/dependencies as nodes and edges, and what
// each edge says — its calls, the share of them that failed, its p99. Pure (no DOM, no fetch;
// tests/js/graph-model.test.mjs); graph/layout.js places it, graph/render.js draws it.
//
//   import { buildGraph } from "/static/graph/model.js";
//   const graph = buildGraph(body.data, { services }); // services: GET /api/v3/services
//
// A link is {parent, child, callCount} in Jaeger's shape, and from this viewer also
// {errorCount, p99Ms} (trace_viewer/dependencies.py says what a call and a failed one are).
// Against a real Jaeger the extra fields are absent: the edge then says only its calls.
import { fmtMs } from "../common.js";

/**
 * Shares of failed calls where an edge's colour steps up: none failed, under 5 %, under 25 %,
 * 25 % or more (classes err-0 … err-3; err-unknown when the API gives no error count).
 */
export const ERROR_STEPS = [0.05, 0.25];
/** The thinnest and thickest edge stroke (px); between them by the square root of the calls. */
export const STROKE = { min: 1.5, max: 6 };

const count = (value) => {
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? Math.floor(number) : 0;
};
const optionalCount = (value) => (value === undefined || value === null ? null : count(value));
const optionalMs = (value) => {
  const number = Number(value);
  return value === undefined || value === null || !Number.isFinite(number) || number < 0
    ? null
    : number;
};

/**
 * The graph of `links` (the `data` of /api/dependencies). `services`: the names that have
 * spans of their own (GET /api/v3/services); a callee not among them never answered in the
 * store — an address such as 127.0.0.1:8002, or a `peer.service` nobody runs — and is a node
 * of kind "unanswered". Without `services` every node is a "service".
 *
 * Links of the same parent and child are merged into one edge: Jaeger's Elasticsearch and
 * OpenSearch stores answer the links of every stored document in the lookback (one a day from
 * its spark-dependencies job) as they come, so one pair can come several times. Their calls
 * and failures add up, and the p99 is the larger of theirs (a bound: percentiles do not add).
 *
 * Returns {nodes, edges}, both sorted by name (edges by parent, then child):
 *   node {id, name, kind, callsIn, failedIn (null when unknown), callsOut}
 *   edge {id, parent, child, calls, errors (null when unknown), p99Ms (null when unknown),
 *         errorRate (errors / calls, null when unknown), self (parent === child)}
 */
export function buildGraph(links, { services = null } = {}) {
  const byKey = new Map();
  for (const link of Array.isArray(links) ? links : []) {
    if (!link || typeof link.parent !== "string" || typeof link.child !== "string") continue;
    const key = `${link.parent}\u0000${link.child}`;
    const errors = optionalCount(link.errorCount);
    const p99Ms = optionalMs(link.p99Ms);
    const seen = byKey.get(key);
    if (!seen) {
      byKey.set(key, {
        id: key,
        parent: link.parent,
        child: link.child,
        calls: count(link.callCount),
        errors,
        p99Ms,
        self: link.parent === link.child,
      });
      continue;
    }
    seen.calls += count(link.callCount);
    seen.errors = seen.errors === null || errors === null ? null : seen.errors + errors;
    seen.p99Ms = seen.p99Ms === null || p99Ms === null ? null : Math.max(seen.p99Ms, p99Ms);
  }
  const edges = [...byKey.values()].sort(
    (x, y) => compareNames(x.parent, y.parent) || compareNames(x.child, y.child),
  );
  const known = services ? new Set(services) : null;
  const nodes = new Map();
  const node = (name) => {
    if (!nodes.has(name)) {
      nodes.set(name, {
        id: name,
        name,
        kind: "service",
        callsIn: 0,
        failedIn: 0,
        callsOut: 0,
      });
    }
    return nodes.get(name);
  };
  for (const edge of edges) {
    // A count can exceed the calls only in a hand-made answer; the rate stays a share.
    if (edge.errors !== null) edge.errors = Math.min(edge.errors, edge.calls);
    edge.errorRate = edge.errors === null || edge.calls === 0 ? null : edge.errors / edge.calls;
    node(edge.parent).callsOut += edge.calls;
    const callee = node(edge.child);
    callee.callsIn += edge.calls;
    callee.failedIn =
      callee.failedIn === null || edge.errors === null ? null : callee.failedIn + edge.errors;
  }
  for (const n of nodes.values()) {
    if (known && !known.has(n.name) && n.callsOut === 0) n.kind = "unanswered";
  }
  return { nodes: [...nodes.values()].sort((x, y) => compareNames(x.name, y.name)), edges };
}

/** Names in code-point order, whatever the locale (a stable order for the layout). */
export function compareNames(x, y) {
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * A share of calls as a percentage: "0 %", "<0.1 %", "8.3 %", "50 %", "100 %". Never rounded
 * to 0 when some failed, nor to 100 when some did not.
 */
export function fmtRate(errors, calls) {
  if (!(calls > 0)) return "";
  if (errors <= 0) return "0 %";
  if (errors >= calls) return "100 %";
  const percent = (100 * errors) / calls;
  if (percent < 0.1) return "<0.1 %";
  const text = percent >= 99.95 ? "99.9" : percent.toFixed(1).replace(/\.0$/, "");
  return `${text} %`;
}

/**
 * What an edge says, one string per line: calls ("12 calls"), failures ("2 failed · 16.7 %"
 * or "none failed"; null when the API gives no error count) and latency ("p99 45.2 ms"; null
 * when the API gives none).
 */
export function edgeLabels(edge) {
  const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
  return {
    calls: plural(edge.calls, "call"),
    errors:
      edge.errors === null
        ? null
        : edge.errors === 0
          ? "none failed"
          : `${edge.errors} failed · ${fmtRate(edge.errors, edge.calls)}`,
    p99: edge.p99Ms === null ? null : `p99 ${fmtMs(edge.p99Ms * 1e6)}`,
  };
}

/**
 * An edge's look: `errorClass` by the share of failed calls (ERROR_STEPS), `width` the stroke
 * by the edge's calls against the busiest edge's (`maxCalls`), by square root, so that a
 * tenth of the traffic is still a visible line.
 */
export function edgeStyle(edge, maxCalls) {
  let errorClass = "err-unknown";
  if (edge.errorRate !== null && edge.errorRate !== undefined) {
    const step = edge.errors > 0 ? 1 + ERROR_STEPS.filter((t) => edge.errorRate >= t).length : 0;
    errorClass = `err-${step}`;
  }
  const share = maxCalls > 0 ? Math.min(edge.calls / maxCalls, 1) : 0;
  const width = STROKE.min + (STROKE.max - STROKE.min) * Math.sqrt(share);
  return { errorClass, width: Math.round(width * 10) / 10 };
}
