// Which rows of the timeline show: pure (tests/js/rows.test.mjs); timeline/render.js draws them.

/**
 * The spans hidden, in the model's depth-first `order`: descendants of a collapsed span (the
 * ids in `collapsed`), and with `criticalOnly`, every span not on the critical path (`critical`,
 * the Map criticalPath returns; the path is connected from the root, so what stays is a chain
 * of parents and children).
 *
 * Returns {hidden: Set<spanId>, folded: Set<spanId>} — `folded` the collapsed spans that show
 * and have children to hide (they get a "+N" count).
 */
export function hiddenRows(order, collapsed, { criticalOnly = false, critical = null } = {}) {
  const hidden = new Set();
  const folded = new Set();
  let cut = Infinity; // the depth below which rows are hidden, while inside a folded subtree
  for (const span of order) {
    if (span.depth <= cut) cut = Infinity;
    const offPath = criticalOnly && critical && !critical.has(span.id);
    if (span.depth > cut || offPath) {
      hidden.add(span.id);
      continue;
    }
    if (collapsed.has(span.id) && span.children.length > 0) {
      folded.add(span.id);
      cut = span.depth;
    }
  }
  return { hidden, folded };
}

/** Like Jaeger's "collapse +1": the open spans with children at the deepest visible level. */
export function deepestOpen(order, collapsed, hidden) {
  const open = order.filter(
    (s) => s.children.length && !hidden.has(s.id) && !collapsed.has(s.id),
  );
  const depth = Math.max(...open.map((s) => s.depth));
  return open.filter((s) => s.depth === depth).map((s) => s.id);
}

/** Like Jaeger's "expand +1": the folded spans at the shallowest visible level. */
export function shallowestFolded(order, collapsed, hidden) {
  const folded = order.filter(
    (s) => s.children.length && !hidden.has(s.id) && collapsed.has(s.id),
  );
  const depth = Math.min(...folded.map((s) => s.depth));
  return folded.filter((s) => s.depth === depth).map((s) => s.id);
}
