// The service graph (rendering): the SVG of what graph/layout.js lays out — services as boxes
// in their colours, calls as arrows whose colour says the share that failed and whose width
// says how many there were, each with its label — and the legend of those colours.
import { h } from "../common.js";
import { ERROR_STEPS, edgeLabels, edgeStyle } from "./model.js";
import { edgeHrefs, nodeHref } from "./location.js";

const SVG = "http://www.w3.org/2000/svg";
const LINE_HEIGHT = 14;
// Measured bold: the failures line is, and a box a little wide for the others does no harm.
const LABEL_FONT = "600 12px system-ui, sans-serif";
export const NAME_FONT = "600 13px system-ui, sans-serif";
const ERROR_CLASSES = ["err-0", "err-1", "err-2", "err-3", "err-unknown"];

/** An SVG element: s("path", {d: "M0,0"}, child, ...), as common.js's h() for HTML. */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value)) el.style.setProperty(prop, v);
    } else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A function measuring text in `font` (px), for the layout's columns and the label boxes. */
export function textMeasurer(font) {
  const context = document.createElement("canvas").getContext("2d");
  context.font = font;
  return (text) => context.measureText(String(text)).width;
}

/** A link around `children`, or a plain group when there is nowhere to go. */
function maybeLink(href, attrs, ...children) {
  return href ? s("a", { href, ...attrs }, ...children) : s("g", attrs, ...children);
}

function arrowMarkers() {
  return s(
    "defs",
    {},
    ERROR_CLASSES.map((cls) =>
      s(
        "marker",
        {
          id: `arrow-${cls}`,
          class: `arrow ${cls}`,
          viewBox: "0 0 10 10",
          refX: 9,
          refY: 5,
          markerWidth: 11,
          markerHeight: 11,
          markerUnits: "userSpaceOnUse",
          orient: "auto",
        },
        s("path", { d: "M0,0 L10,5 L0,10 z" }),
      ),
    ),
  );
}

function edgeTitle(edge, labels) {
  const parts = [`${edge.parent} → ${edge.child}`, labels.calls];
  if (labels.errors) parts.push(labels.errors);
  else parts.push("failures unknown (the API gives no errorCount)");
  if (labels.p99) parts.push(labels.p99);
  return parts.join(" · ");
}

function drawEdge(item, style, hrefs) {
  const { edge } = item;
  const labels = edgeLabels(edge);
  return s(
    "g",
    {
      class: `edge ${item.kind} ${style.errorClass}`,
      "data-parent": edge.parent,
      "data-child": edge.child,
      "data-calls": edge.calls,
      "data-errors": edge.errors ?? "",
      "data-p99-ms": edge.p99Ms ?? "",
      "data-kind": item.kind,
    },
    s(
      "a",
      { href: hrefs.calls, class: "edge-link" },
      s("title", {}, `${edgeTitle(edge, labels)} — click for these traces`),
      s("path", { class: "edge-hit", d: item.path }),
      s("path", {
        class: "edge-line",
        d: item.path,
        "stroke-width": style.width,
        "marker-end": `url(#arrow-${style.errorClass})`,
      }),
    ),
  );
}

/** The label's box: its lines, centred at the layout's point or just above or below it. */
function drawLabel(item, style, hrefs, measure) {
  const { edge, label } = item;
  const labels = edgeLabels(edge);
  const lines = [
    { cls: "calls", text: labels.calls },
    labels.errors !== null && { cls: "errors", text: labels.errors, href: hrefs.errors },
    labels.p99 && { cls: "p99", text: labels.p99 },
  ].filter(Boolean);
  const width = Math.ceil(Math.max(...lines.map((l) => measure(l.text)))) + 10;
  const height = lines.length * LINE_HEIGHT + 6;
  const box = s("rect", { class: "label-box", x: -width / 2, y: 0, width, height, rx: 4 });
  const top =
    label.align === "above"
      ? label.y - height - 3
      : label.align === "below"
        ? label.y + 3
        : label.y - height / 2;
  return s(
    "g",
    {
      class: `edge-label ${style.errorClass}`,
      "data-parent": edge.parent,
      "data-child": edge.child,
      transform: `translate(${label.x},${Math.round(top * 10) / 10})`,
    },
    // The box and its lines lead where the edge does, the failures to the failures (the
    // lines in reading order, each in its link: links do not nest).
    s("a", { href: hrefs.calls, class: "label-link box" }, box),
    lines.map((line, i) => {
      const drawn = s(
        "text",
        { class: `label-${line.cls}`, x: 0, y: 3 + (i + 1) * LINE_HEIGHT - 3.5 },
        line.text,
      );
      const [href, cls] = line.href ? [line.href, line.cls] : [hrefs.calls, "calls"];
      return href ? s("a", { href, class: `label-link ${cls}` }, drawn) : drawn;
    }),
  );
}

function nodeTitle(node) {
  if (node.kind === "unanswered") {
    return (
      `${node.name}: no spans from it in the store — ${node.callsIn} call(s) to it were ` +
      "never answered (refused, timed out, or the service was down). Its edges lead to the " +
      "callers' traces with errors."
    );
  }
  const parts = [`${node.name}: ${node.callsIn} call(s) in`];
  if (node.failedIn) parts.push(`${node.failedIn} failed`);
  parts.push(`${node.callsOut} call(s) out`);
  return `${parts.join(", ")} — click for its traces`;
}

function drawNode(item, colors, range) {
  const { node } = item;
  const unanswered = node.kind === "unanswered";
  return maybeLink(
    nodeHref(node, range),
    { class: "node-link" },
    s(
      "g",
      {
        class: `node ${node.kind}`,
        "data-service": node.name,
        "data-kind": node.kind,
        "data-calls-in": node.callsIn,
        "data-failed-in": node.failedIn ?? "",
        "data-calls-out": node.callsOut,
        transform: `translate(${item.x},${item.y})`,
        style: unanswered ? null : { "--svc": colors.get(node.name) },
      },
      s("title", {}, nodeTitle(node)),
      s("rect", { class: "node-box", width: item.width, height: item.height, rx: 6 }),
      unanswered
        ? s("text", { class: "node-mark", x: 14, y: item.height / 2 + 4.5 }, "?")
        : s("circle", { class: "node-dot", cx: 15, cy: item.height / 2, r: 5.5 }),
      s("text", { class: "node-name", x: 28, y: item.height / 2 + 4.5 }, node.name),
    ),
  );
}

/** The graph as an SVG element (the layout's size), nodes and edges marked with their data. */
export function renderGraph(graph, layout, colors, range = null) {
  const kindOf = new Map(graph.nodes.map((n) => [n.name, n.kind]));
  const maxCalls = Math.max(0, ...graph.edges.map((e) => e.calls));
  const measure = textMeasurer(LABEL_FONT);
  const styled = layout.edges.map((item) => ({
    item,
    style: edgeStyle(item.edge, maxCalls),
    hrefs: edgeHrefs(item.edge, kindOf.get(item.edge.child), range),
  }));
  const services = graph.nodes.filter((n) => n.kind === "service").length;
  return s(
    "svg",
    {
      xmlns: SVG,
      id: "service-graph",
      class: "service-graph",
      width: layout.width,
      height: layout.height,
      viewBox: `0 0 ${layout.width} ${layout.height}`,
      role: "img",
      "aria-label":
        `Service graph: ${services} service${services === 1 ? "" : "s"}, ` +
        `${graph.edges.length} edge${graph.edges.length === 1 ? "" : "s"}`,
    },
    arrowMarkers(),
    s(
      "g",
      { class: "edges" },
      styled.map(({ item, style, hrefs }) => drawEdge(item, style, hrefs)),
    ),
    s(
      "g",
      { class: "nodes" },
      layout.nodes.map((item) => drawNode(item, colors, range)),
    ),
    s(
      "g",
      { class: "labels" },
      styled.map(({ item, style, hrefs }) => drawLabel(item, style, hrefs, measure)),
    ),
  );
}

/**
 * What the colours, widths and marks mean; `unknown`, `unanswered`, `back`: whether some edge
 * has no error count, some callee never answered, some edge is drawn back against the flow.
 */
export function renderLegend({ unknown = false, unanswered = false, back = false } = {}) {
  const pct = (share) => `${Math.round(share * 100)} %`;
  const [low, high] = ERROR_STEPS;
  const item = (cls, text) =>
    h(
      "span",
      { class: "item", "data-error-class": cls },
      h("span", { class: `edge-swatch ${cls}`, "aria-hidden": "true" }),
      text,
    );
  return h(
    "div",
    { class: "legend graph-legend", id: "graph-legend", "aria-label": "legend" },
    h("span", {}, "Failed calls:"),
    item("err-0", "none"),
    item("err-1", `under ${pct(low)}`),
    item("err-2", `${pct(low)} to ${pct(high)}`),
    item("err-3", `${pct(high)} or more`),
    unknown ? item("err-unknown", "not reported") : null,
    h("span", { class: "item" }, "· line width: number of calls"),
    h(
      "span",
      { class: "item" },
      "· a label: calls, failed (a 5xx, or no answer) and their share, p99 of the caller's time",
    ),
    back
      ? h(
          "span",
          { class: "item" },
          h("span", { class: "edge-swatch back", "aria-hidden": "true" }),
          "dashed: a call back against the flow (the services call each other in a cycle)",
        )
      : null,
    unanswered
      ? h(
          "span",
          { class: "item" },
          h("span", { class: "node-swatch unanswered", "aria-hidden": "true" }, "?"),
          "never answered: no spans from it",
        )
      : null,
  );
}
