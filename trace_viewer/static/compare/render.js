// The comparison (rendering): the merged tree compare/diff.js builds, as a table with the
// counts and total time of each side and the difference, and the legend of its colours.
import { fmtMs, h, serviceChip } from "../common.js";
import { STEPS, visibleRows } from "./diff.js";

const PRESENCE_LABEL = { both: "in both", only_a: "only in A", only_b: "only in B" };
const MARK = { both: "", only_a: "−", only_b: "+" };

/** "+42.0 ms", "−3.10 ms", "±0 ms". */
export function fmtDelta(ns) {
  if (ns === 0) return "±0 ms";
  return `${ns > 0 ? "+" : "−"}${fmtMs(Math.abs(ns))}`;
}

/** The change relative to A: "+191 %", "−50 %"; "" when A took no time. */
export function fmtChange(totalA, totalB) {
  if (!(totalA > 0)) return "";
  const percent = (100 * (totalB - totalA)) / totalA;
  const rounded = Math.abs(percent) >= 10 ? Math.round(percent) : Number(percent.toFixed(1));
  if (rounded === 0) return "±0 %";
  return `${rounded > 0 ? "+" : "−"}${Math.abs(rounded)} %`;
}

/** The class of a node's difference: "only-a", "only-b", "same", "slower-2", "faster-3". */
export function deltaClass(node) {
  if (node.presence !== "both") return node.presence.replace("_", "-");
  const { direction, step } = node.scale;
  return direction === "same" ? "same" : `${direction}-${step}`;
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** One side's cell: "3× 64.0 ms", a link to the side's slowest span, its error and fault marks. */
function sideCell(node, side, traceId) {
  const spans = node[side];
  const label = side.toUpperCase();
  if (!spans.length) return h("td", { class: `num side side-${side} none` }, "—");
  const slowest = spans.reduce((x, y) => (y.duration > x.duration ? y : x));
  const count = spans.length;
  const total = side === "a" ? node.totalA : node.totalB;
  const errors = side === "a" ? node.errorsA : node.errorsB;
  const faults = side === "a" ? node.faultsA : node.faultsB;
  return h(
    "td",
    { class: `num side side-${side}` },
    errors
      ? h(
          "span",
          {
            class: "err-icon side-error",
            title: `${plural(errors, "span")} with status ERROR in ${label}`,
          },
          "!",
        )
      : null,
    faults
      ? h(
          "span",
          {
            class: "fault-icon",
            title: `${plural(faults, "span")} an injected fault touched in ${label}`,
          },
          "⚡",
        )
      : null,
    h(
      "a",
      {
        href: `/trace/${traceId}#span=${slowest.id}`,
        title: `Open the ${count > 1 ? "slowest of these spans" : "span"} in trace ${label}`,
      },
      count > 1 ? h("span", { class: "times" }, `${count}× `) : null,
      fmtMs(total),
    ),
  );
}

function deltaCell(node, largest) {
  if (node.presence !== "both") {
    return h(
      "td",
      { class: "num delta" },
      h("span", { class: "presence-text" }, PRESENCE_LABEL[node.presence]),
    );
  }
  const change = fmtChange(node.totalA, node.totalB);
  return h(
    "td",
    {
      class: "num delta",
      title:
        node.scale.direction === "same"
          ? `within ${Math.round(100 * STEPS[0])} % of the larger total`
          : `B is ${node.scale.direction} here: ${fmtDelta(node.delta)}${change ? ` (${change})` : ""}`,
    },
    h("span", { class: "delta-text" }, fmtDelta(node.delta)),
    change ? h("span", { class: "change" }, change) : null,
    h(
      "span",
      { class: "delta-bar", "aria-hidden": "true" },
      h("span", {
        class: node.delta >= 0 ? "up" : "down",
        style: { width: `${largest > 0 ? (100 * Math.abs(node.delta)) / largest : 0}%` },
      }),
    ),
  );
}

function nameCell(node, colors) {
  const changed = node.presence === "both" && node.countA !== node.countB;
  const errors = node.errorsA + node.errorsB;
  const title = `${node.operation} (${node.service}): ${PRESENCE_LABEL[node.presence]}`;
  return h(
    "td",
    { class: "name-cell", title },
    h("span", { class: "indent", style: { width: `${node.depth * 14}px` } }),
    h("span", { class: "presence-mark", "aria-hidden": "true" }, MARK[node.presence]),
    h("span", { class: "svc-dot", style: { "--svc": colors.get(node.service) } }),
    h("span", { class: "op" }, node.operation),
    changed
      ? h(
          "span",
          {
            class: "count-change",
            title: `${node.countA} span(s) on this path in A, ${node.countB} in B`,
          },
          `${node.countA}→${node.countB}`,
        )
      : null,
    errors ? h("span", { class: "err-icon", "aria-label": "errors" }, "!") : null,
  );
}

/**
 * The table of `diff`'s rows (all, or `changedOnly` those that differ and their ancestors):
 * span (indented, marked − only in A, + only in B, the count change), service, each side's
 * count and total, and the difference.
 */
export function renderDiffTable(diff, colors, { changedOnly = false } = {}) {
  const rows = visibleRows(diff, { changedOnly });
  const largest = Math.max(
    0,
    ...diff.rows.filter((n) => n.presence === "both").map((n) => Math.abs(n.delta)),
  );
  const body = rows.length
    ? rows.map((node) =>
        h(
          "tr",
          {
            class: [
              "diff-row",
              node.presence.replace("_", "-"),
              deltaClass(node),
              node.errorsA + node.errorsB ? "has-error" : "",
            ],
            "data-key": node.key,
            "data-depth": String(node.depth),
            "data-service": node.service,
            "data-operation": node.operation,
            "data-presence": node.presence,
            "data-count-a": String(node.countA),
            "data-count-b": String(node.countB),
            "data-total-a-ns": String(node.totalA),
            "data-total-b-ns": String(node.totalB),
            "data-delta-ns": String(node.delta),
            "data-delta-class": deltaClass(node),
            "data-errors-a": String(node.errorsA),
            "data-errors-b": String(node.errorsB),
          },
          nameCell(node, colors),
          h("td", { class: "service" }, serviceChip(node.service, colors)),
          sideCell(node, "a", diff.a.traceId),
          sideCell(node, "b", diff.b.traceId),
          deltaCell(node, largest),
        ),
      )
    : h(
        "tr",
        { class: "empty" },
        h("td", { colspan: "5" }, "No differences: every path has the same spans and times."),
      );
  return h(
    "table",
    { class: "diff", id: "diff-table" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Span"),
        h("th", { scope: "col" }, "Service"),
        h("th", { scope: "col", class: "num" }, "A"),
        h("th", { scope: "col", class: "num" }, "B"),
        h("th", { scope: "col", class: "num" }, "Δ (B − A)"),
      ),
    ),
    h("tbody", {}, body),
  );
}

/** What the colours and marks mean. */
export function renderLegend() {
  const item = (attrs, ...children) => h("span", { class: "item", ...attrs }, ...children);
  // Steps of |Δ| against the larger of the two totals (diff.js STEPS): a tenth of it, a third
  // (one side 1.5× the other), a half (2×).
  const tenth = `${Math.round(100 * STEPS[0])} %`;
  const steps = [
    ["faster-3", "≥2× faster"],
    ["faster-2", "≥1.5×"],
    ["faster-1", `>${tenth}`],
    ["same", `within ${tenth}`],
    ["slower-1", `>${tenth}`],
    ["slower-2", "≥1.5×"],
    ["slower-3", "≥2× slower"],
  ];
  return h(
    "div",
    { class: "legend compare-legend", id: "compare-legend", "aria-label": "legend" },
    item(
      {},
      h("span", { class: "swatch only-a", "aria-hidden": "true" }, "−"),
      "only in A (red)",
    ),
    item(
      {},
      h("span", { class: "swatch only-b", "aria-hidden": "true" }, "+"),
      "only in B (green)",
    ),
    item(
      { class: "item scale", title: "In both: B's total time on the path against A's" },
      "in both, B against A: ",
      steps.map(([cls, label]) =>
        h("span", { class: `scale-step ${cls}`, "data-delta-class": cls }, label),
      ),
    ),
    item({}, h("span", { class: "count-change" }, "2→3"), "span count changed"),
    item(
      {},
      h("span", { class: "err-icon", "aria-hidden": "true" }, "!"),
      "errors (status ERROR) on that side",
    ),
  );
}
