// The flame graph (icicle) of a trace: pure (tests/js/flamegraph.test.mjs);
// flamegraph/render.js draws it.
//
// As Jaeger UI's `convertOtelTraceToFlameData`: one node per path of (service, operation) from
// the root, so siblings of one name (check_stock ×3) merge into one node whose value is the sum
// of their durations. A span's children can add up to more than the span (they ran
// concurrently, or one outlived it): their widths are then scaled down to fit under it, and
// the node says so (`squeezed`) — the labels keep the real times.
import { selfTime } from "../statistics/compute.js";

/**
 * The tree of nodes: {key, service, name, depth, spanIds, count, total (Σ duration, ns),
 * self (Σ self time), errors, first (earliest start), children, squeezed}. `key` is the path
 * of child indexes from the top ("0", "0.2", "0.2.1"); a trace with several top-level spans
 * (orphans) gets a virtual top node {service: null, name: "trace"} over them.
 */
export function flameTree(model) {
  const build = (spans, depth, key) => {
    const node = {
      key,
      service: spans[0].service,
      name: spans[0].name,
      depth,
      spanIds: spans.map((s) => s.id),
      count: spans.length,
      total: spans.reduce((n, s) => n + s.duration, 0),
      self: spans.reduce((n, s) => n + selfTime(s), 0),
      errors: spans.filter((s) => s.error).length,
      first: Math.min(...spans.map((s) => s.start)),
      children: [],
      squeezed: false,
    };
    node.children = groups(spans.flatMap((s) => s.children)).map((group, i) =>
      build(group, depth + 1, `${key}.${i}`),
    );
    node.squeezed = node.children.reduce((n, c) => n + c.total, 0) > node.total;
    return node;
  };
  const tops = groups(model.topLevel);
  if (tops.length === 1 && tops[0].length === 1) return build(tops[0], 0, "0");
  const children = tops.map((group, i) => build(group, 1, `0.${i}`));
  const total = children.reduce((n, c) => n + c.total, 0);
  return {
    key: "0",
    service: null,
    name: "trace",
    depth: 0,
    spanIds: [],
    count: 0,
    total,
    self: 0,
    errors: 0,
    first: 0,
    children,
    squeezed: false,
  };
}

/** Spans grouped by (service, name), groups in order of their first start. */
function groups(spans) {
  const found = new Map();
  for (const span of spans) {
    const key = `${span.service}\u0000${span.name}`;
    if (!found.has(key)) found.set(key, []);
    found.get(key).push(span);
  }
  const list = [...found.values()];
  const first = (group) => Math.min(...group.map((s) => s.start));
  return list.sort((a, b) => first(a) - first(b));
}

/** The node of a key, or null. */
export function findNode(tree, key) {
  if (!key) return null;
  let node = tree;
  if (key === node.key) return node;
  for (const index of key.split(".").slice(1)) {
    node = node.children[Number(index)];
    if (!node) return null;
  }
  return node;
}

/**
 * Where to draw each node: [{node, depth, x0, x1}] with x in [0, 1] of the width. The focused
 * node (default: the top) spans the whole width; its ancestors are drawn above it at full width
 * (`ancestor: true`), nodes outside its subtree are left out. Children are laid out left to
 * right in order of first start, each as wide as its share of the parent's total — or of the
 * children's sum, when that is larger (a squeezed node). Nodes narrower than `minWidth` are
 * left out with their subtrees.
 */
export function flameLayout(tree, { focus = null, minWidth = 0 } = {}) {
  const target = findNode(tree, focus) || tree;
  const out = [];
  // Ancestors of the focus, full width.
  let node = tree;
  for (const index of target.key.split(".").slice(1)) {
    out.push({ node, depth: node.depth, x0: 0, x1: 1, ancestor: true });
    node = node.children[Number(index)];
  }
  const place = (n, x0, x1) => {
    if (x1 - x0 < minWidth) return;
    out.push({ node: n, depth: n.depth, x0, x1, ancestor: false });
    const scale = Math.max(n.total, n.children.reduce((sum, c) => sum + c.total, 0));
    let x = x0;
    for (const child of n.children) {
      const width = scale > 0 ? ((x1 - x0) * child.total) / scale : 0;
      place(child, x, x + width);
      x += width;
    }
  };
  place(target, 0, 1);
  return out;
}
