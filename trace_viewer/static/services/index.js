// The Services page (GET /services): RED per service and operation — rate, error % and
// p50/p95/p99 over a lookback, as charts — from GET /api/metrics/red, refreshed every 5 s.
// Each exemplar is a dot on the latency chart that opens its trace; each operation links to
// the trace list searching its traces.
//
//   model.js   grouping, chart scales and paths, URLs and formats; pure
//              (tests/js/services.test.mjs)
// Browser tests: tests/test_browser_signals.py.
import { ServiceColors, getJSON, h, serviceChip } from "../common.js";
import {
  LOOKBACKS,
  byService,
  exemplarUrl,
  fmtEstimate,
  fmtPercent,
  fmtRate,
  linePath,
  lookbackOf,
  scales,
  searchUrl,
} from "./model.js";

const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 220, height: 56 };
const REFRESH_MS = 5000;
const QUANTILE_LINES = [
  ["p50_ms", "p50"],
  ["p95_ms", "p95"],
  ["p99_ms", "p99"],
];

const params = new URLSearchParams(location.search);
const page = {
  lookback: lookbackOf(params.get("lookback")).value,
  colors: new ServiceColors(),
  timer: null,
};

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) if (child) el.append(child);
  return el;
}

/** A small chart of one or more series keys, exemplar dots on top (latency only). */
function chart(row, keys, { endMs, lookbackMs, label, exemplars = false, percent = false }) {
  const values = keys.flatMap(([key]) => row.series.map((p) => p[key]));
  const dots = exemplars ? row.exemplars : [];
  const scale = scales(endMs, lookbackMs, [...values, ...dots.map((e) => e.value_ms)], CHART);
  const top = percent ? fmtPercent(scale.top) : exemplars ? fmtEstimate(scale.top) : fmtRate(scale.top);
  return svg(
    "svg",
    {
      class: "red-chart",
      width: CHART.width,
      height: CHART.height,
      viewBox: `0 0 ${CHART.width} ${CHART.height}`,
      role: "img",
      "aria-label": label,
    },
    svg("title", {}, document.createTextNode(`${label} (top of the chart: ${top})`)),
    svg("line", { class: "axis", x1: 0, x2: CHART.width, y1: CHART.height - 4, y2: CHART.height - 4 }),
    keys.map(([key, name]) =>
      svg("path", { class: `line ${name}`, d: linePath(row.series, key, scale) }),
    ),
    dots.map((e) =>
      svg(
        "a",
        { href: exemplarUrl(e), class: "exemplar" },
        svg(
          "circle",
          {
            cx: scale.x(e.time_ms).toFixed(1),
            cy: scale.y(e.value_ms).toFixed(1),
            r: 3.5,
            "data-trace-id": e.trace_id,
          },
          svg("title", {}, document.createTextNode(`${e.value_ms} ms · trace ${e.trace_id}`)),
        ),
      ),
    ),
    svg("text", { class: "top", x: 2, y: 10 }, document.createTextNode(top)),
  );
}

function operationRow(row, context) {
  return h(
    "tr",
    { class: "red-row", "data-service": row.service, "data-operation": row.operation },
    h(
      "th",
      { scope: "row" },
      h(
        "a",
        {
          href: searchUrl(row, page.lookback),
          class: "operation",
          title: "this operation's traces over the same lookback",
        },
        row.operation,
      ),
    ),
    h("td", { class: "num rate" }, fmtRate(row.rate)),
    h("td", { class: ["num", "errors", row.error_rate > 0 ? "failed" : ""] }, fmtPercent(row.error_rate)),
    h("td", { class: "num p50" }, fmtEstimate(row.p50_ms)),
    h("td", { class: "num p95" }, fmtEstimate(row.p95_ms)),
    h("td", { class: "num p99" }, fmtEstimate(row.p99_ms)),
    h("td", {}, chart(row, [["rate", "rate"]], { ...context, label: `${row.operation}: requests per second` })),
    h(
      "td",
      {},
      chart(row, [["error_rate", "errors"]], {
        ...context,
        label: `${row.operation}: error rate`,
        percent: true,
      }),
    ),
    h(
      "td",
      {},
      chart(row, QUANTILE_LINES, {
        ...context,
        label: `${row.operation}: p50, p95, p99 (ms) and exemplars`,
        exemplars: true,
      }),
    ),
  );
}

function render(rows, endMs) {
  const lookbackMs = lookbackOf(page.lookback).ms;
  const groups = byService(rows);
  page.colors.add(groups.map((g) => g.service));
  const context = { endMs, lookbackMs };
  const content = groups.length
    ? groups.map((group) =>
        h(
          "section",
          { class: "red-service", "data-service": group.service },
          h("h2", {}, serviceChip(group.service, page.colors)),
          h(
            "table",
            { class: "red-table" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["Operation", "Rate", "Errors", "p50", "p95", "p99"].map((t) => h("th", {}, t)),
                h("th", {}, "requests/s"),
                h("th", {}, "error %"),
                h(
                  "th",
                  {},
                  "latency ",
                  h("span", { class: "line-key p50" }, "p50"),
                  " ",
                  h("span", { class: "line-key p95" }, "p95"),
                  " ",
                  h("span", { class: "line-key p99" }, "p99"),
                  " · ● exemplar",
                ),
              ),
            ),
            h("tbody", {}, group.operations.map((row) => operationRow(row, context))),
          ),
        ),
      )
    : h(
        "p",
        { class: "message" },
        "No request metrics in this lookback. Services export them every ",
        h("code", {}, "OTEL_METRIC_EXPORT_INTERVAL"),
        " ms (5 s under ordersim up).",
      );
  document.getElementById("content").replaceChildren(...[content].flat());
}

async function refresh() {
  clearTimeout(page.timer);
  const status = document.getElementById("status");
  const lookbackMs = lookbackOf(page.lookback).ms;
  try {
    const body = await getJSON(`/api/metrics/red?lookback=${lookbackMs}`);
    render(body.services || [], Date.now());
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.state = "ready";
  } catch (err) {
    status.textContent = `could not load: ${err.message || err}`;
    document.body.dataset.state = document.body.dataset.state || "error";
  }
  if (document.getElementById("live").checked) page.timer = setTimeout(refresh, REFRESH_MS);
}

const select = document.getElementById("lookback");
select.replaceChildren(
  ...LOOKBACKS.map((l) =>
    h("option", { value: l.value, selected: l.value === page.lookback }, l.label),
  ),
);
select.addEventListener("change", () => {
  page.lookback = select.value;
  const url = new URL(location.href);
  url.searchParams.set("lookback", page.lookback);
  history.replaceState(null, "", url);
  refresh();
});
document.getElementById("refresh").addEventListener("click", refresh);
document.getElementById("live").addEventListener("change", refresh);
refresh();
