// Two traces merged into one tree: what is only in A, only in B, and in both. Pure
// (tests/js/diff.test.mjs); compare/render.js draws it, compare/index.js is the page.
//
// The same rules as `ordersim trace diff` (ordersim/trace_diff.py), checked against the same
// fixtures (tests/fixtures/trace_diff/): the spans of each trace are grouped by their *path*
// from the root — the (service, operation) of every ancestor and of the span itself — as
// Jaeger UI's trace comparison keys its nodes (`TraceDag` with the `ancestralPathParentOrLeaf`
// id factory). Spans on one path are one node with a count: check_stock ×3 under one
// reservation is one node in each trace, so concurrent siblings of one name compare stably
// whatever order they ran in. A node in both traces carries the total duration of its spans
// in each and the difference.
//
//   import { buildModel } from "/static/trace/model.js";
//   const diff = diffTraces(buildModel(a, bodyA.result.resourceSpans), buildModel(b, …));
//   diff.rows  // every node, depth first, siblings in the order they started

/** A node's presence, as ordersim/trace_diff.py names it. */
export const PRESENCE = ["both", "only_a", "only_b"];

/**
 * A difference smaller than this share of the larger total is shown but not coloured, as in
 * `ordersim trace diff`; beyond it the colour deepens at 1.5× and 2× (STEPS).
 */
export const NOTICEABLE = 0.1;
/** Shares of the larger total (|Δ| / max(A, B)) where the colour steps up: +10 %, 1.5×, 2×. */
export const STEPS = [NOTICEABLE, 1 / 3, 1 / 2];

/** Strings in code-point order, as Python compares them (`<` compares UTF-16 code units). */
export function comparePoints(x, y) {
  if (x === y) return 0;
  const a = Array.from(x, (c) => c.codePointAt(0));
  const b = Array.from(y, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(a.length, b.length); i += 1)
    if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * The (service, operation) of each span from the top of the span's tree down to the span,
 * following parent ids: a span whose parent is missing starts a path of its own, and a parent
 * cycle stops at the repeat (as ordersim/trace_diff.py's `_path`).
 */
export function spanPath(model, span) {
  const path = [];
  const seen = new Set();
  let current = span;
  while (current && !seen.has(current.id)) {
    seen.add(current.id);
    path.push([current.service, current.name]);
    current = current.parentId ? model.byId.get(current.parentId) : undefined;
  }
  return path.reverse();
}

function newNode(path) {
  const [service, operation] = path[path.length - 1];
  return {
    key: path.map(([s, o]) => `${s}\u0000${o}`).join("\u0001"),
    path,
    service,
    operation,
    depth: path.length - 1,
    a: [],
    b: [],
    children: new Map(),
    // Where the node's first span starts, from its trace's start (A's if it is in A).
    offset: 0,
  };
}

const byOffset = (x, y) =>
  x.offset - y.offset ||
  comparePoints(x.service, y.service) ||
  comparePoints(x.operation, y.operation);

const total = (spans) => spans.reduce((n, s) => n + Number(s.endAbs - s.startAbs), 0);

/** The node's counts, totals (ns), difference and presence, from its spans. */
function settle(node) {
  node.countA = node.a.length;
  node.countB = node.b.length;
  node.presence = node.countA && node.countB ? "both" : node.countA ? "only_a" : "only_b";
  node.totalA = total(node.a);
  node.totalB = total(node.b);
  node.delta = node.totalB - node.totalA; // positive: B spent longer here
  node.errorsA = node.a.filter((s) => s.error).length;
  node.errorsB = node.b.filter((s) => s.error).length;
  node.faultsA = node.a.filter((s) => s.fault).length;
  node.faultsB = node.b.filter((s) => s.fault).length;
  node.scale = deltaScale(node);
  node.children = [...node.children.values()].sort(byOffset);
  node.children.forEach(settle);
}

/**
 * `a` and `b` (models from trace/model.js `buildModel`) merged by span path. Returns
 * {a, b, roots, rows, counts}: `rows` every node depth first, siblings in the order they
 * started; `counts` {both, only_a, only_b}. A node: {key, path, service, operation, depth,
 * a, b (its spans in each trace), children, offset, presence, countA, countB, totalA, totalB,
 * delta (B − A, ns), errorsA, errorsB, faultsA, faultsB, scale (deltaScale)}.
 */
export function diffTraces(a, b) {
  const roots = new Map();
  for (const [side, model] of [
    ["a", a],
    ["b", b],
  ]) {
    for (const span of model.spans) {
      const path = spanPath(model, span);
      let siblings = roots;
      let node = null;
      path.forEach(([service, operation], depth) => {
        const key = `${service}\u0000${operation}`;
        node = siblings.get(key);
        if (!node) {
          node = newNode(path.slice(0, depth + 1));
          siblings.set(key, node);
        }
        siblings = node.children;
      });
      const members = node[side];
      members.push(span);
      // span.start is ns from its own trace's first start.
      if (side === "a" || !node.a.length)
        node.offset = members.length === 1 ? span.start : Math.min(node.offset, span.start);
    }
  }
  const tops = [...roots.values()].sort(byOffset);
  tops.forEach(settle);
  const rows = [];
  const stack = [...tops].reverse();
  while (stack.length) {
    const node = stack.pop();
    rows.push(node);
    for (let i = node.children.length - 1; i >= 0; i -= 1) stack.push(node.children[i]);
  }
  const counts = Object.fromEntries(PRESENCE.map((p) => [p, 0]));
  for (const node of rows) counts[node.presence] += 1;
  return { a, b, roots: tops, rows, counts };
}

/**
 * How much slower or faster B is on a node in both traces: {direction: "slower" | "faster" |
 * "same", step: 0–3, share: |Δ| / the larger total}. Step 0 ("same") below NOTICEABLE, 1 up
 * to 1.5×, 2 up to 2×, 3 at 2× or more. A node in one trace only has no scale (step 0,
 * direction null).
 */
export function deltaScale({ presence, totalA, totalB }) {
  if (presence !== "both") return { direction: null, step: 0, share: 0 };
  const larger = Math.max(totalA, totalB);
  const share = larger > 0 ? Math.abs(totalB - totalA) / larger : 0;
  const step = STEPS.filter((threshold) => share >= threshold).length;
  const direction = step === 0 ? "same" : totalB > totalA ? "slower" : "faster";
  return { direction, step, share };
}

/** A node differs: it is in one trace only, or its count, errors or time changed noticeably. */
export function differs(node) {
  return (
    node.presence !== "both" ||
    node.countA !== node.countB ||
    node.errorsA !== node.errorsB ||
    node.scale.step > 0
  );
}

/**
 * The rows to show: all of them, or (`changedOnly`) those that differ and their ancestors, so
 * that each keeps its place in the tree.
 */
export function visibleRows(diff, { changedOnly = false } = {}) {
  if (!changedOnly) return diff.rows;
  const keep = new Set();
  const visit = (node, ancestors) => {
    if (differs(node)) for (const n of [...ancestors, node]) keep.add(n);
    for (const child of node.children) visit(child, [...ancestors, node]);
  };
  for (const top of diff.roots) visit(top, []);
  return diff.rows.filter((node) => keep.has(node));
}
