// The trace page (GET /trace/<id>): loads the trace and the spans of other traces that link to
// it, draws the header (facts, legend, the skew note) and the view the URL's fragment names —
// the timeline, the statistics or the flame graph — beside a details panel they share.
//
// One folder per view, the pure transform apart from the rendering, as Jaeger UI keeps them:
//   model.js                    the trace model (tree, overhangs, skew clipped to parents)
//   critical-path/compute.js    the critical path
//   timeline/rows.js, render.js the waterfall rows (which show) and their drawing
//   minimap/range.js, render.js the time range maths and the minimap that chooses it
//   statistics/compute.js, render.js   per service and operation, with self time
//   flamegraph/layout.js, render.js    the icicle
//   details.js                  the selected span's panel
//   logs/model.js, render.js    the trace's log records: on the spans, and their timeline
//   location.js                 the page state in the URL's fragment
import { HttpError, ServiceColors, fmtClock, fmtMs, getJSON, h, serviceChip } from "../common.js";
import { compareAction } from "../compare/picker.js";
import { criticalPath } from "./critical-path/compute.js";
import { copyButton, renderDetails } from "./details.js";
import { FlamegraphView } from "./flamegraph/render.js";
import { VIEWS, formatHash, parseHash } from "./location.js";
import { buildLogs, logsBySpan } from "./logs/model.js";
import { logTimeline } from "./logs/render.js";
import { formatRange, parseRange } from "./minimap/range.js";
import { FAULT_ATTRIBUTE, buildModel, overhangs } from "./model.js";
import { StatisticsView } from "./statistics/render.js";
import { Timeline } from "./timeline/render.js";

const NOT_FOUND_RETRIES = 4;
const RETRY_MS = 1500;
const VIEW_LABELS = { timeline: "Timeline", statistics: "Statistics", flamegraph: "Flame graph" };

/** What every view reads, and how it changes the page. */
const page = {
  model: null,
  colors: new ServiceColors(),
  critical: new Map(),
  overhangs: new Map(), // span id -> {before, after, parentId, calledBy}
  linked: new Map(), // span id -> [spans of other traces linking to it]
  logs: new Map(), // span id -> [its log records, in time order]
  selected: null,
  view: "timeline",
  views: {},
  details: null,
  hashState: parseHash(location.hash),
  select,
  showView,
  setHash,
};

/** Merge `partial` into the URL's fragment state (without a history entry). */
function setHash(partial) {
  const next = { ...page.hashState, ...partial };
  if (next.range && typeof next.range === "object") next.range = formatRange(next.range);
  page.hashState = next;
  const hash = formatHash(next);
  if (location.hash !== hash)
    history.replaceState(null, "", `${location.pathname}${location.search}${hash}`);
}

function fact(label, value, cls) {
  return h("div", {}, h("dt", {}, label), h("dd", { class: cls }, value));
}

function renderHeader(model) {
  const root = model.root;
  const onPath = page.critical.size;
  const linkedCount = [...page.linked.values()].reduce((n, list) => n + list.length, 0);
  const faultErrors = model.errorCount - model.realErrorCount;
  return h(
    "header",
    { class: "trace-head" },
    h(
      "h1",
      {},
      serviceChip(root.service, page.colors),
      h("span", { class: "op", title: root.name }, root.name),
      root.httpStatus !== null
        ? h("span", { class: "badge http", title: "the root span's HTTP status" }, root.httpStatus)
        : null,
      model.realErrorCount
        ? h(
            "span",
            {
              class: "badge error",
              id: "error-badge",
              title: "spans with status ERROR that no injected fault caused",
            },
            `⚠ ${model.realErrorCount} error${model.realErrorCount > 1 ? "s" : ""}`,
          )
        : null,
      model.faultCount
        ? h(
            "span",
            {
              class: "badge fault",
              id: "fault-badge",
              title:
                `spans an injected fault touched (${FAULT_ATTRIBUTE})` +
                (faultErrors ? `; ${faultErrors} ERROR span(s) failed because of them` : ""),
            },
            `⚡ ${model.faultCount} injected`,
          )
        : null,
      linkedCount
        ? h(
            "span",
            {
              class: "badge linked",
              id: "linked-badge",
              title: "spans in other traces link to spans of this one (e.g. compensation retries)",
            },
            `↪ ${linkedCount} linked from later traces`,
          )
        : null,
      h(
        "span",
        { class: "head-actions" },
        h("input", {
          type: "search",
          id: "find",
          placeholder: "Find spans…",
          title: "Operation, service, span id or attribute; Enter jumps to the next match",
          "aria-label": "find spans",
          oninput: (e) => findSpans(e.target.value),
          onkeydown: (e) => {
            if (e.key === "Enter") page.views.timeline.nextMatch(e.shiftKey ? -1 : 1);
            if (e.key === "Escape") {
              e.target.value = "";
              findSpans("");
            }
          },
        }),
        h("span", { class: "find-count muted", id: "find-count", "aria-live": "polite" }),
        compareAction(model),
        h(
          "a",
          {
            class: "button",
            href: `/api/traces/${model.traceId}`,
            download: `trace-${model.traceId}.jaeger.json`,
            title: "Jaeger JSON (Jaeger UI: Search → Upload JSON)",
          },
          "⤓ Jaeger JSON",
        ),
        h(
          "a",
          {
            class: "button",
            href: `/api/v3/traces/${model.traceId}`,
            download: `trace-${model.traceId}.otlp.json`,
            title: "OTLP JSON",
          },
          "⤓ OTLP JSON",
        ),
        h(
          "button",
          { type: "button", onclick: () => load(true), title: "Reload the trace (late spans)" },
          "↻ Reload",
        ),
      ),
    ),
    h(
      "dl",
      { class: "facts" },
      fact(
        "Trace ID",
        h("span", {}, h("code", { id: "trace-id" }, model.traceId), " ", copyButton(model.traceId)),
      ),
      fact("Started", fmtClock(model.startAbs, { withDate: true })),
      fact("Duration", h("span", { id: "trace-duration" }, fmtMs(model.duration))),
      fact("Services", String(model.services.length)),
      fact("Spans", h("span", { id: "span-count" }, String(model.spans.length))),
      fact("Depth", String(model.maxDepth)),
      fact(
        "Errors",
        h(
          "span",
          {},
          h("span", { id: "error-count" }, String(model.realErrorCount)),
          faultErrors
            ? h(
                "span",
                { class: "muted", id: "fault-error-count" },
                ` · ${faultErrors} caused by ⚡ injected faults`,
              )
            : null,
        ),
        model.realErrorCount ? "error" : "",
      ),
      fact("Critical path", `${onPath} span${onPath === 1 ? "" : "s"}`),
    ),
    renderLegend(model),
    model.warnings.length || page.overhangs.size
      ? h(
          "div",
          { class: "warnings" },
          model.warnings.map((w) => h("div", {}, `⚠ ${w}`)),
          page.overhangs.size
            ? h(
                "div",
                { id: "overhang-warning" },
                `⇥ ${page.overhangs.size} span(s) run outside their parent's time range ` +
                  "(marked ⇥, the part outside hatched): scheduling on one machine, clock " +
                  "skew between machines. The critical path, self times and the flame graph " +
                  "count them only up to their parent's end.",
              )
            : null,
        )
      : null,
    h(
      "nav",
      { class: "view-tabs", role: "tablist", "aria-label": "views of this trace" },
      VIEWS.map((view) =>
        h(
          "button",
          {
            type: "button",
            role: "tab",
            id: `tab-${view}`,
            "data-view": view,
            "aria-selected": view === page.view ? "true" : "false",
            onclick: () => showView(view),
          },
          VIEW_LABELS[view],
        ),
      ),
    ),
  );
}

function renderLegend(model) {
  const item = (attrs, ...children) => h("span", { class: "item", ...attrs }, ...children);
  return h(
    "div",
    { class: "legend", "aria-label": "legend" },
    model.services.map((service) =>
      h(
        "span",
        { class: "item", style: { "--svc": page.colors.get(service) } },
        h("span", { class: "swatch", "aria-hidden": "true" }),
        service,
        h("span", { class: "svc-count" }, `(${model.serviceCounts.get(service)})`),
      ),
    ),
    item(
      {
        id: "legend-critical",
        title:
          "The chain of spans that determined the trace's end-to-end duration: at each step, the child that finished last before its parent's cut-off. Shortening anything off this path would not make the trace faster.",
      },
      h("span", { class: "swatch cp", "aria-hidden": "true" }),
      "critical path (band under the bar: its time on the path)",
    ),
    item(
      {},
      h("span", { class: "swatch err", "aria-hidden": "true" }),
      h("span", { class: "err-icon", "aria-hidden": "true" }, "!"),
      "error (status ERROR)",
    ),
    item({}, h("span", { class: "event-mark-legend", "aria-hidden": "true" }), "span event"),
    item(
      {},
      h("span", { class: "http-status s4", "aria-hidden": "true" }, "402"),
      "HTTP status",
    ),
    model.spans.some((s) => s.links.length) || page.linked.size
      ? item(
          {},
          h("span", { class: "link-mark out", "aria-hidden": "true" }, "↩"),
          "links to another span ",
          h("span", { class: "link-mark in", "aria-hidden": "true" }, "↪"),
          "linked from other traces",
        )
      : null,
    model.topLevel.some((s) => s.orphan)
      ? item({}, h("span", { class: "orphan-icon" }, "orphan"), "parent span missing")
      : null,
    model.faultCount
      ? item(
          {},
          h("span", { class: "fault-icon", "aria-hidden": "true" }, "⚡"),
          "injected fault (not a real failure)",
        )
      : null,
    page.overhangs.size
      ? item(
          { id: "legend-overhang" },
          h("span", { class: "overhang-icon", "aria-hidden": "true" }, "⇥"),
          h("span", { class: "swatch overhang", "aria-hidden": "true" }),
          "outside its parent (scheduling or clock skew)",
        )
      : null,
  );
}

function findSpans(query) {
  if (query.trim() && page.view !== "timeline") showView("timeline");
  const found = page.views.timeline.findSpans(query);
  document.getElementById("find-count").textContent =
    found === null ? "" : `${found} match${found === 1 ? "" : "es"}`;
}

function select(spanId, { scroll = true, focus = true } = {}) {
  const span = spanId ? page.model.byId.get(String(spanId).toLowerCase()) : null;
  page.selected = span ? span.id : null;
  setHash({ span: page.selected });
  page.views.timeline.reveal(span, {
    scroll: scroll && page.view === "timeline",
    focus: focus && page.view === "timeline",
  });
  if (!span) {
    page.details.hidden = true;
    page.details.replaceChildren();
    delete page.details.dataset.spanId;
    return;
  }
  page.details.hidden = false;
  page.details.replaceChildren(...renderDetails(span, page).filter(Boolean));
  page.details.dataset.spanId = span.id;
  page.details.scrollTop = 0;
}

function showView(view) {
  if (!VIEWS.includes(view)) view = "timeline";
  const state = page.hashState;
  if (!page.views[view]) {
    if (view === "statistics")
      page.views.statistics = new StatisticsView(page, { sort: state.sort, by: state.by });
    if (view === "flamegraph") page.views.flamegraph = new FlamegraphView(page, { focus: state.focus });
    page.viewArea.append(page.views[view].element);
  }
  page.view = view;
  for (const [name, v] of Object.entries(page.views)) v.element.hidden = name !== view;
  for (const tab of document.querySelectorAll(".view-tabs [role=tab]"))
    tab.setAttribute("aria-selected", tab.dataset.view === view ? "true" : "false");
  document.body.dataset.view = view;
  setHash({ view });
}

function render(model, linked, resourceLogs) {
  page.model = model;
  const logs = buildLogs(model, resourceLogs);
  page.logs = logsBySpan(logs);
  page.critical = criticalPath(model);
  page.overhangs = overhangs(model);
  page.linked = new Map();
  for (const entry of linked) {
    const id = String(entry.linkedSpanID || "").toLowerCase();
    if (!model.byId.has(id)) continue;
    if (!page.linked.has(id)) page.linked.set(id, []);
    page.linked.get(id).push(entry);
  }
  page.colors.add(model.services);
  page.views = {};
  document.title = `${model.root.name} · ${model.traceId.slice(0, 8)} · trace viewer`;

  const state = page.hashState;
  page.views.timeline = new Timeline(page, {
    range: parseRange(state.range),
    criticalOnly: state.critical,
  });
  page.views.timeline.element.append(logTimeline(page, logs));
  page.viewArea = h("div", { class: "view-area" }, page.views.timeline.element);
  page.details = h("aside", {
    class: "details",
    id: "details",
    hidden: true,
    "aria-label": "span details",
  });
  const main = h("div", { class: "trace-main" }, page.viewArea, page.details);
  document.getElementById("content").replaceWith(
    h("div", { id: "content", style: { display: "contents" } }, renderHeader(model), main),
  );
  showView(state.view);
  if (state.span && model.byId.has(state.span)) select(state.span, { focus: false });
  document.body.dataset.state = "ready";
}

function showMessage(kind, title, ...body) {
  document
    .getElementById("content")
    .replaceWith(
      h(
        "div",
        { id: "content" },
        h("div", { class: `message ${kind}`, role: "alert" }, h("h2", {}, title), ...body),
      ),
    );
}

let retries = 0;
let retryTimer = null;

async function load(keepSelection = false) {
  clearTimeout(retryTimer);
  const raw = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const traceId = raw.toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(traceId)) {
    showMessage(
      "error",
      "Not a trace id",
      h("p", {}, h("code", {}, raw), " is not a trace id (32 hex digits)."),
      h("p", {}, h("a", { href: "/" }, "← All traces")),
    );
    document.body.dataset.state = "error";
    return;
  }
  const services = getJSON("/api/v3/services").then(
    (b) => page.colors.add(b.services || []),
    () => null,
  );
  // Links read forward are a bonus: a server without them (a real Jaeger) still shows the trace.
  const linked = getJSON(`/api/traces/${traceId}/linked`).then(
    (b) => b?.data || [],
    () => [],
  );
  // So are logs: Jaeger has none, and a trace is worth showing without them.
  const logs = getJSON(`/api/logs?trace_id=${traceId}`).then(
    (b) => b?.result?.resourceLogs || [],
    () => [],
  );
  try {
    const body = await getJSON(`/api/v3/traces/${traceId}`);
    await services;
    const model = buildModel(traceId, body?.result?.resourceSpans);
    if (!model) throw new HttpError(404, "trace has no spans");
    const collapsed = keepSelection && page.views.timeline ? page.views.timeline.collapsed : null;
    if (keepSelection) page.hashState = parseHash(location.hash);
    render(model, await linked, await logs);
    if (collapsed) {
      for (const id of collapsed) if (model.byId.has(id)) page.views.timeline.collapsed.add(id);
      page.views.timeline.updateVisibility();
    }
  } catch (err) {
    if (err instanceof HttpError && err.status === 404) {
      const again = retries < NOT_FOUND_RETRIES;
      showMessage(
        "",
        "Trace not found",
        h("p", {}, "No spans of trace ", h("code", {}, traceId), " have been stored."),
        h(
          "p",
          {},
          "Its spans may still be arriving: refresh in a moment.",
          again ? " (Retrying automatically…)" : "",
        ),
        h(
          "p",
          {},
          h(
            "button",
            {
              type: "button",
              class: "primary",
              onclick: () => {
                retries = 0;
                load();
              },
            },
            "↻ Refresh",
          ),
          " ",
          h("a", { href: "/" }, "← All traces"),
        ),
      );
      document.body.dataset.state = "not-found";
      if (again) {
        retries += 1;
        retryTimer = setTimeout(load, RETRY_MS);
      }
    } else {
      showMessage(
        "error",
        "Could not load the trace",
        h("p", {}, String(err.message || err)),
        h("p", {}, h("button", { type: "button", onclick: () => load() }, "↻ Retry")),
      );
      document.body.dataset.state = "error";
    }
  }
}

try {
  const saved = localStorage.getItem("trace-viewer.name-col");
  if (saved) document.getElementById("app").style.setProperty("--name-col", saved);
} catch {
  /* storage unavailable */
}
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || !page.selected || event.target.closest("input, textarea, select"))
    return;
  event.preventDefault();
  select(null);
  page.views.timeline?.waterfall.focus({ preventScroll: true });
});
window.addEventListener("hashchange", () => {
  if (!page.model) return;
  const state = parseHash(location.hash);
  page.hashState = { ...page.hashState, ...state };
  if (state.view !== page.view) showView(state.view);
  if (state.span !== page.selected) select(state.span);
});
load();
