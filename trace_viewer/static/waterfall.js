// The waterfall (GET /trace/<id>): one row per span, nested by parent, bars on a time axis
// scaled to the whole trace, the critical path marked, a details panel for the selected span.
import {
  HttpError,
  ServiceColors,
  fmtClock,
  fmtMs,
  fmtTick,
  getJSON,
  h,
  niceTicks,
  serviceChip,
  valueText,
} from "/static/common.js";
import { FAULT_ATTRIBUTE, KINDS, buildModel, criticalPath, overhangs } from "/static/model.js";

const INDENT_PX = 14;
const NOT_FOUND_RETRIES = 4;
const RETRY_MS = 1500;

// ---------------------------------------------------------------------------------------------
// View

const state = {
  model: null,
  colors: new ServiceColors(),
  critical: new Map(),
  overhangs: new Map(), // span id -> {before, after, parentId, calledBy}
  rows: new Map(), // span id -> row element
  collapsed: new Set(),
  selected: null,
  details: null,
  waterfall: null,
};

const pct = (ns) => (state.model.duration > 0 ? (100 * ns) / state.model.duration : 0);
const kindName = (kind) => KINDS[kind] || `kind ${kind}`;

/** What an injected fault did to a span, from its fault.injected events. */
function faultText(span) {
  const kinds = span.events
    .filter((e) => e.name === "fault.injected")
    .map((e) => {
      const get = (key) => e.attributes.find(([k]) => k === key)?.[1];
      const kind = get("ordersim.fault.kind") || "fault";
      const delay = get("ordersim.fault.delay_ms");
      const status = get("ordersim.fault.status_code");
      return delay !== undefined ? `${kind} ${delay} ms` : status ? `${kind} ${status}` : kind;
    });
  return `injected fault${kinds.length ? `: ${kinds.join(", ")}` : ""} (${FAULT_ATTRIBUTE})`;
}

/** "ends 0.42 ms after its parent" (and/or "starts … before"). */
function overhangText(overhang) {
  const parts = [];
  if (overhang.before) parts.push(`starts ${fmtMs(overhang.before)} before`);
  if (overhang.after) parts.push(`ends ${fmtMs(overhang.after)} after`);
  return `${parts.join(" and ")} its parent`;
}

/** Why a span can stick out of its parent. */
function overhangCause(overhang) {
  return overhang.calledBy
    ? "A SERVER span outliving the CLIENT span that called it: the client saw the whole " +
        "response before the server's span ended — scheduling on one machine, clock skew " +
        "between two."
    : "A child outliving its parent: the parent ended without waiting for it (or, across " +
        "machines, clock skew).";
}

function kvTable(pairs, { sort = true } = {}) {
  const rows = sort ? [...pairs].sort((a, b) => a[0].localeCompare(b[0])) : pairs;
  return h(
    "table",
    { class: "kv" },
    h(
      "tbody",
      {},
      rows.map(([key, value]) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, key),
          h("td", {}, value instanceof Node ? value : valueText(value)),
        ),
      ),
    ),
  );
}

function copyButton(text, label = "copy") {
  return h(
    "button",
    {
      class: "small",
      type: "button",
      title: `Copy ${text}`,
      onclick: async (event) => {
        event.stopPropagation();
        try {
          await navigator.clipboard.writeText(text);
          event.target.textContent = "copied";
        } catch {
          event.target.textContent = "select it";
        }
        setTimeout(() => (event.target.textContent = label), 1200);
      },
    },
    label,
  );
}

function renderHeader(model) {
  const root = model.root;
  const fact = (label, value, cls) =>
    h("div", {}, h("dt", {}, label), h("dd", { class: cls }, value));
  const onPath = state.critical.size;
  return h(
    "header",
    { class: "trace-head" },
    h(
      "h1",
      {},
      serviceChip(root.service, state.colors),
      h("span", { class: "op", title: root.name }, root.name),
      model.errorCount
        ? h(
            "span",
            { class: "badge error", title: "spans with status ERROR" },
            `⚠ ${model.errorCount} error${model.errorCount > 1 ? "s" : ""}`,
          )
        : null,
      model.faultCount
        ? h(
            "span",
            {
              class: "badge fault",
              id: "fault-badge",
              title: `spans an injected fault touched (${FAULT_ATTRIBUTE})`,
            },
            `⚡ ${model.faultCount} injected`,
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
            if (e.key === "Enter") nextMatch(e.shiftKey ? -1 : 1);
            if (e.key === "Escape") {
              e.target.value = "";
              findSpans("");
            }
          },
        }),
        h("span", { class: "find-count muted", id: "find-count", "aria-live": "polite" }),
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
        h("span", { id: "error-count" }, String(model.errorCount)),
        model.errorCount ? "error" : "",
      ),
      fact("Critical path", `${onPath} span${onPath === 1 ? "" : "s"}`),
    ),
    h(
      "div",
      { class: "legend", "aria-label": "legend" },
      model.services.map((service) =>
        h(
          "span",
          { class: "item", style: { "--svc": state.colors.get(service) } },
          h("span", { class: "swatch", "aria-hidden": "true" }),
          service,
          h("span", { class: "svc-count" }, `(${model.serviceCounts.get(service)})`),
        ),
      ),
      h(
        "span",
        {
          class: "item",
          id: "legend-critical",
          title:
            "The chain of spans that determined the trace's end-to-end duration: at each step, the child that finished last before its parent's cut-off. Shortening anything off this path would not make the trace faster.",
        },
        h("span", { class: "swatch cp", "aria-hidden": "true" }),
        "critical path (black line: time on the path)",
      ),
      h(
        "span",
        { class: "item" },
        h("span", { class: "swatch err", "aria-hidden": "true" }),
        h("span", { class: "err-icon", "aria-hidden": "true" }, "!"),
        "error (status ERROR)",
      ),
      h(
        "span",
        { class: "item" },
        h("span", { class: "event-mark-legend", "aria-hidden": "true" }, "┃"),
        "span event",
      ),
      model.topLevel.some((s) => s.orphan)
        ? h(
            "span",
            { class: "item" },
            h("span", { class: "orphan-icon" }, "orphan"),
            "parent span missing",
          )
        : null,
      model.faultCount
        ? h(
            "span",
            { class: "item" },
            h("span", { class: "fault-icon", "aria-hidden": "true" }, "⚡"),
            "injected fault (not a real failure)",
          )
        : null,
      state.overhangs.size
        ? h(
            "span",
            { class: "item", id: "legend-overhang" },
            h("span", { class: "overhang-icon", "aria-hidden": "true" }, "⇥"),
            h("span", { class: "swatch overhang", "aria-hidden": "true" }),
            "outside its parent (scheduling or clock skew)",
          )
        : null,
    ),
    model.warnings.length || state.overhangs.size
      ? h(
          "div",
          { class: "warnings" },
          model.warnings.map((w) => h("div", {}, `⚠ ${w}`)),
          state.overhangs.size
            ? h(
                "div",
                { id: "overhang-warning" },
                `⇥ ${state.overhangs.size} span(s) run outside their parent's time range ` +
                  "(marked ⇥, the part outside hatched): scheduling on one machine, clock " +
                  "skew between machines.",
              )
            : null,
        )
      : null,
  );
}

function renderAxis(model) {
  const { step, ticks } = niceTicks(model.duration, 8);
  const labels = [];
  const lines = [];
  for (const t of ticks) {
    const p = pct(t);
    if (p > 100.0001) continue;
    if (p > 88 && p < 99.9999) continue; // too close to the end label
    const cls = ["tick", t === 0 ? "first" : "", p >= 99.9999 ? "last" : ""].join(" ").trim();
    labels.push(h("span", { class: cls, style: { left: `${p}%` } }, fmtTick(t, step)));
    lines.push(h("span", { class: "line", style: { left: `${p}%` } }));
  }
  if (!ticks.some((t) => pct(t) >= 99.9999) && model.duration > 0) {
    labels.push(h("span", { class: "tick last", style: { left: "100%" } }, fmtMs(model.duration)));
    lines.push(h("span", { class: "line", style: { left: "100%" } }));
  }
  const resizer = h("span", {
    class: "resizer",
    title: "Drag to resize the name column",
    "aria-hidden": "true",
  });
  resizer.addEventListener("pointerdown", startResize);
  const axis = h(
    "div",
    { class: "axis" },
    h(
      "div",
      { class: "name-h" },
      h("span", { class: "label" }, "Service & operation"),
      h(
        "button",
        {
          class: "small",
          type: "button",
          title: "Collapse one level",
          "data-action": "collapse-one",
          onclick: () => stepCollapse(true),
        },
        "−1",
      ),
      h(
        "button",
        {
          class: "small",
          type: "button",
          title: "Expand one level",
          "data-action": "expand-one",
          onclick: () => stepCollapse(false),
        },
        "+1",
      ),
      h(
        "button",
        {
          class: "small",
          type: "button",
          title: "Collapse all",
          "data-action": "collapse-all",
          onclick: () => setAllCollapsed(true),
        },
        "⊟ all",
      ),
      h(
        "button",
        {
          class: "small",
          type: "button",
          title: "Expand all",
          "data-action": "expand-all",
          onclick: () => setAllCollapsed(false),
        },
        "⊞ all",
      ),
      resizer,
    ),
    h("div", { class: "ticks", "aria-label": "time axis" }, labels),
  );
  const grid = h(
    "div",
    { class: "gridlines", "aria-hidden": "true" },
    h("div", { class: "inner" }, lines),
  );
  return { axis, grid };
}

function spanTitle(span) {
  const lines = [
    `${span.name}`,
    `${span.service} · ${kindName(span.kind)} · ${fmtMs(span.duration)} at +${fmtMs(span.start)}`,
  ];
  if (span.error) lines.push(`ERROR${span.status.message ? `: ${span.status.message}` : ""}`);
  if (span.fault) lines.push(faultText(span));
  const overhang = state.overhangs.get(span.id);
  if (overhang) lines.push(`${overhangText(overhang)}: scheduling or clock skew`);
  if (span.orphan) lines.push(`orphan: parent ${span.parentId} is not in this trace`);
  if (state.critical.has(span.id)) lines.push("on the critical path");
  return lines.join("\n");
}

function renderRow(span) {
  const segments = state.critical.get(span.id) || [];
  const overhang = state.overhangs.get(span.id);
  const showService = !span.parent || span.parent.service !== span.service;
  const left = pct(span.start);
  const width = pct(span.duration);
  const toggle = h(
    "button",
    {
      class: `toggle${span.children.length ? "" : " leaf"}`,
      type: "button",
      tabindex: "-1",
      "aria-label": span.children.length ? "collapse or expand children" : null,
      onclick: (event) => {
        event.stopPropagation();
        toggleCollapsed(span);
      },
    },
    "▾",
  );
  const row = h(
    "div",
    {
      class: [
        "row",
        span.error ? "error" : "",
        span.fault ? "fault" : "",
        overhang ? "overhang" : "",
        segments.length ? "critical" : "",
        span.orphan ? "orphan" : "",
      ]
        .join(" ")
        .replace(/\s+/g, " ")
        .trim(),
      role: "treeitem",
      "aria-level": String(span.depth + 1),
      "aria-expanded": span.children.length ? "true" : null,
      tabindex: "-1",
      "data-span-id": span.id,
      "data-parent-span-id": span.parentId || null,
      "data-service": span.service,
      "data-depth": String(span.depth),
      "data-error": span.error ? "true" : null,
      "data-fault": span.fault ? "true" : null,
      "data-overhang-ns": overhang ? String(overhang.before + overhang.after) : null,
      "data-critical": segments.length ? "true" : null,
      "data-orphan": span.orphan ? "true" : null,
      style: { "--svc": state.colors.get(span.service) },
      onclick: () => select(span.id),
    },
    h(
      "div",
      { class: "name", title: spanTitle(span) },
      h("span", { class: "indent", style: { width: `${span.depth * INDENT_PX}px` } }),
      toggle,
      h("span", { class: "svc-dot", "aria-hidden": "true" }),
      span.error
        ? h("span", { class: "err-icon", title: "status ERROR", "aria-label": "error" }, "!")
        : null,
      span.fault
        ? h(
            "span",
            { class: "fault-icon", title: faultText(span), "aria-label": "injected fault" },
            "⚡",
          )
        : null,
      overhang
        ? h(
            "span",
            {
              class: "overhang-icon",
              title: `${overhangText(overhang)}. ${overhangCause(overhang)}`,
              "aria-label": "outside its parent",
            },
            "⇥",
          )
        : null,
      span.orphan
        ? h("span", { class: "orphan-icon", title: `parent ${span.parentId} is missing` }, "orphan")
        : null,
      h(
        "span",
        { class: "label" },
        h("span", { class: "op" }, span.name),
        showService ? h("span", { class: "svc" }, span.service) : null,
        h("span", { class: "hidden-count" }),
      ),
    ),
    h(
      "div",
      { class: "lane", title: spanTitle(span) },
      h("div", { class: "bar", style: { left: `${left}%`, width: `${width}%` } }),
      overhang?.before
        ? h("span", {
            class: "overhang-seg",
            style: { left: `${left}%`, width: `${pct(overhang.before)}%` },
          })
        : null,
      overhang?.after
        ? h("span", {
            class: "overhang-seg",
            style: { left: `${pct(span.end - overhang.after)}%`, width: `${pct(overhang.after)}%` },
          })
        : null,
      segments.map((seg) =>
        h("span", {
          class: "cp-seg",
          style: { left: `${pct(seg.start)}%`, width: `${pct(seg.end - seg.start)}%` },
        }),
      ),
      span.events.map((event) =>
        h("span", {
          class: `event-mark${event.name === "exception" ? " exception" : ""}`,
          style: { left: `${pct(Math.min(Math.max(event.time, span.start), span.end))}%` },
        }),
      ),
      h(
        "span",
        { class: "dur", style: { left: `calc(${left + width}% + 4px)` } },
        fmtMs(span.duration),
        overhang
          ? h(
              "span",
              {
                class: "overhang-note",
                title: `${overhangText(overhang)}. ${overhangCause(overhang)}`,
              },
              `⇥ ${fmtMs(overhang.before + overhang.after)} outside parent`,
            )
          : null,
      ),
    ),
  );
  row.toggleEl = toggle;
  state.rows.set(span.id, row);
  return row;
}

function updateVisibility() {
  let cut = Infinity;
  for (const span of state.model.order) {
    if (span.depth <= cut) cut = Infinity;
    const row = state.rows.get(span.id);
    const hidden = span.depth > cut;
    row.hidden = hidden;
    const collapsed = state.collapsed.has(span.id) && span.children.length > 0;
    if (!hidden && collapsed) cut = span.depth;
    if (span.children.length) {
      row.toggleEl.textContent = collapsed ? "▸" : "▾";
      row.setAttribute("aria-expanded", collapsed ? "false" : "true");
      const count = row.querySelector(".hidden-count");
      count.replaceChildren();
      if (collapsed) {
        count.append(`+${span.descendants}`);
        if (span.descendantErrors) {
          count.append(
            " ",
            h(
              "span",
              { class: "hidden-errors", title: "hidden spans with status ERROR" },
              `⚠ ${span.descendantErrors}`,
            ),
          );
        }
      }
    }
  }
}

function toggleCollapsed(span, collapse = !state.collapsed.has(span.id)) {
  if (!span.children.length) return;
  if (collapse) state.collapsed.add(span.id);
  else state.collapsed.delete(span.id);
  updateVisibility();
}

function setAllCollapsed(collapse) {
  state.collapsed.clear();
  if (collapse)
    for (const span of state.model.order) if (span.children.length) state.collapsed.add(span.id);
  updateVisibility();
}

/** Like Jaeger's "collapse +1" / "expand +1": fold the deepest open level, or open the shallowest folded one. */
function stepCollapse(collapse) {
  const visible = visibleOrder().filter((s) => s.children.length);
  if (collapse) {
    const open = visible.filter((s) => !state.collapsed.has(s.id));
    const depth = Math.max(...open.map((s) => s.depth));
    for (const span of open) if (span.depth === depth) state.collapsed.add(span.id);
  } else {
    const folded = visible.filter((s) => state.collapsed.has(s.id));
    const depth = Math.min(...folded.map((s) => s.depth));
    for (const span of folded) if (span.depth === depth) state.collapsed.delete(span.id);
  }
  updateVisibility();
}

function startResize(event) {
  event.preventDefault();
  const page = document.getElementById("app");
  const handle = event.currentTarget;
  const left = state.waterfall.getBoundingClientRect().left;
  const total = state.waterfall.clientWidth;
  handle.classList.add("dragging");
  const move = (e) => {
    const px = Math.min(Math.max(e.clientX - left, 160), total - 200);
    page.style.setProperty("--name-col", `${px}px`);
  };
  const up = () => {
    handle.classList.remove("dragging");
    window.removeEventListener("pointermove", move);
    window.removeEventListener("pointerup", up);
    try {
      localStorage.setItem("trace-viewer.name-col", page.style.getPropertyValue("--name-col"));
    } catch {
      /* storage unavailable */
    }
  };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", up);
}

// ---------------------------------------------------------------------------------------------
// Details panel

function exceptionBlock(attrs) {
  const get = (key) => attrs.find(([k]) => k === key)?.[1];
  const type = get("exception.type");
  const message = get("exception.message");
  const stack = get("exception.stacktrace");
  const rest = attrs.filter(
    ([k]) => !["exception.type", "exception.message", "exception.stacktrace"].includes(k),
  );
  return [
    type || message
      ? h(
          "div",
          { class: "exc" },
          type ? h("span", { class: "type" }, String(type)) : null,
          type && message ? ": " : "",
          message ? String(message) : "",
        )
      : null,
    stack
      ? h("details", { open: true }, h("summary", {}, "stack trace"), h("pre", {}, String(stack)))
      : null,
    rest.length ? kvTable(rest) : null,
  ];
}

function renderDetails(span) {
  const model = state.model;
  const segments = state.critical.get(span.id) || [];
  const onPath = segments.reduce((n, s) => n + s.end - s.start, 0);
  const parentCell = !span.parentId
    ? h("span", { class: "muted" }, "— (root span)")
    : span.parent
      ? h(
          "a",
          {
            href: `#span=${span.parentId}`,
            onclick: (e) => {
              e.preventDefault();
              select(span.parentId);
            },
          },
          span.parentId,
        )
      : h("span", {}, span.parentId, " ", h("span", { class: "orphan-icon" }, "missing: orphan"));
  const statusCls = span.status.code === 2 ? "error" : span.status.code === 1 ? "ok" : "unset";
  const statusText =
    span.status.code === 2
      ? `ERROR${span.status.message ? ` — ${span.status.message}` : ""}`
      : span.status.code === 1
        ? `OK${span.status.message ? ` — ${span.status.message}` : ""}`
        : "UNSET (no status set: not an error)";
  const facts = [
    ["Service", serviceChip(span.service, state.colors)],
    ["Operation", span.name],
    ["Kind", kindName(span.kind)],
    ["Span ID", h("span", {}, span.id, " ", copyButton(span.id))],
    ["Parent span ID", parentCell],
    [
      "Start",
      `+${fmtMs(span.start)} from trace start (${fmtClock(span.startAbs, { withDate: false })})`,
    ],
    ["Duration", fmtMs(span.duration)],
    ["End", `+${fmtMs(span.end)}`],
    [
      "Critical path",
      segments.length
        ? `${fmtMs(onPath)} of this span's time is on the critical path (${Math.round((100 * onPath) / Math.max(span.duration, 1))}%)`
        : "not on the critical path",
    ],
    ["Children", String(span.children.length)],
  ];
  if (span.fault)
    facts.push(["Injected fault", h("span", { class: "fault-text" }, faultText(span))]);
  const overhang = state.overhangs.get(span.id);
  if (overhang) {
    facts.push([
      "Outside its parent",
      h(
        "span",
        { class: "overhang-text", id: "overhang-detail" },
        `${overhangText(overhang)} (${model.byId.get(overhang.parentId)?.name || overhang.parentId}). `,
        overhangCause(overhang),
      ),
    ]);
  }
  const section = (title, count, ...body) =>
    h(
      "section",
      {},
      h("h3", {}, title, count === null ? null : h("span", { class: "count" }, ` (${count})`)),
      ...body,
    );

  const events = span.events.map((event) => {
    const exception = event.name === "exception";
    return h(
      "div",
      { class: `event${exception ? " exception" : ""}` },
      h(
        "div",
        { class: "event-head" },
        h("span", { class: "event-name" }, event.name),
        h("span", { class: "event-time" }, `+${fmtMs(event.offset)} from span start`),
      ),
      exception
        ? exceptionBlock(event.attributes)
        : event.attributes.length
          ? kvTable(event.attributes)
          : null,
    );
  });

  const links = span.links.map((link) => {
    const same = link.traceId === model.traceId;
    const href = `/trace/${link.traceId}${link.spanId ? `#span=${link.spanId}` : ""}`;
    return h(
      "div",
      { class: "link-item" },
      h(
        "div",
        {},
        "trace ",
        h(
          "a",
          {
            class: "mono",
            href,
            onclick: same
              ? (e) => {
                  e.preventDefault();
                  select(link.spanId);
                }
              : null,
          },
          link.traceId,
        ),
        same ? h("span", { class: "muted" }, " (this trace)") : null,
      ),
      h("div", {}, "span ", h("code", {}, link.spanId || "—")),
      link.attributes.length ? kvTable(link.attributes) : null,
    );
  });

  return [
    h(
      "header",
      {},
      h("h2", {}, span.name, h("div", {}, serviceChip(span.service, state.colors))),
      h(
        "button",
        {
          type: "button",
          class: "small",
          title: "Close (Esc)",
          onclick: () => select(null),
          "aria-label": "close details",
        },
        "✕",
      ),
    ),
    h(
      "div",
      { class: `status-line ${statusCls}`, id: "span-status" },
      h("strong", {}, "Status: "),
      statusText,
    ),
    section("Span", null, kvTable(facts, { sort: false })),
    section(
      "Attributes",
      span.attributes.length,
      span.attributes.length ? kvTable(span.attributes) : h("p", { class: "muted" }, "none"),
    ),
    section(
      "Events",
      span.events.length,
      events.length ? events : h("p", { class: "muted" }, "none"),
    ),
    span.links.length ? section("Links", span.links.length, links) : null,
    section(
      "Resource",
      span.resource.length,
      kvTable(span.resource),
      span.resourceSchemaUrl
        ? h("p", { class: "schema-url" }, "schema URL: ", h("code", {}, span.resourceSchemaUrl))
        : null,
    ),
    section(
      "Instrumentation scope",
      null,
      kvTable(
        [
          ["name", span.scope.name || "—"],
          ["version", span.scope.version || "—"],
          ["schema URL", span.scope.schemaUrl || "—"],
        ],
        { sort: false },
      ),
    ),
  ];
}

function select(spanId, { scroll = true, focus = true } = {}) {
  const model = state.model;
  const span = spanId ? model.byId.get(String(spanId).toLowerCase()) : null;
  if (state.selected) state.rows.get(state.selected)?.classList.remove("selected");
  state.selected = span ? span.id : null;
  const hash = span ? `#span=${span.id}` : "";
  if (location.hash !== hash)
    history.replaceState(null, "", `${location.pathname}${location.search}${hash}`);
  if (!span) {
    state.details.hidden = true;
    state.details.replaceChildren();
    return;
  }
  // Reveal it: expand collapsed ancestors.
  let changed = false;
  for (let p = span.parent; p; p = p.parent) changed = state.collapsed.delete(p.id) || changed;
  if (changed) updateVisibility();
  const row = state.rows.get(span.id);
  row.classList.add("selected");
  state.details.hidden = false;
  state.details.replaceChildren(...renderDetails(span).filter(Boolean));
  state.details.dataset.spanId = span.id;
  state.details.scrollTop = 0;
  if (scroll) row.scrollIntoView({ block: "nearest" });
  if (focus) row.focus({ preventScroll: true });
}

function spanMatches(span, needle) {
  if (span.name.toLowerCase().includes(needle) || span.service.toLowerCase().includes(needle))
    return true;
  if (span.id === needle || span.status.message.toLowerCase().includes(needle)) return true;
  return span.attributes.some(
    ([k, v]) => k.toLowerCase().includes(needle) || valueText(v).toLowerCase().includes(needle),
  );
}

function findSpans(query) {
  const needle = query.trim().toLowerCase();
  state.matches = needle ? state.model.order.filter((s) => spanMatches(s, needle)) : [];
  state.matchIndex = -1;
  const matched = new Set(state.matches.map((s) => s.id));
  for (const [id, row] of state.rows) {
    row.classList.toggle("match", matched.has(id));
    row.classList.toggle("dim", Boolean(needle) && !matched.has(id));
  }
  const count = document.getElementById("find-count");
  count.textContent = needle
    ? `${state.matches.length} match${state.matches.length === 1 ? "" : "es"}`
    : "";
}

function nextMatch(step) {
  if (!state.matches?.length) return;
  const n = state.matches.length;
  state.matchIndex = ((((state.matchIndex ?? -1) + step) % n) + n) % n;
  select(state.matches[state.matchIndex].id, { focus: false });
}

function visibleOrder() {
  return state.model.order.filter((s) => !state.rows.get(s.id).hidden);
}

function onKey(event) {
  if (event.target.closest("input, textarea, select")) return;
  const model = state.model;
  const current = state.selected ? model.byId.get(state.selected) : null;
  const visible = visibleOrder();
  const index = current ? visible.indexOf(current) : -1;
  const go = (span) => {
    if (!span) return;
    event.preventDefault();
    select(span.id);
  };
  switch (event.key) {
    case "ArrowDown":
    case "j":
      go(visible[Math.min(index + 1, visible.length - 1)]);
      break;
    case "ArrowUp":
    case "k":
      go(visible[Math.max(index - 1, 0)]);
      break;
    case "ArrowLeft":
      if (!current) return;
      event.preventDefault();
      if (current.children.length && !state.collapsed.has(current.id))
        toggleCollapsed(current, true);
      else if (current.parent) select(current.parent.id);
      break;
    case "ArrowRight":
      if (current && current.children.length) {
        event.preventDefault();
        toggleCollapsed(current, false);
      }
      break;
    default:
  }
}

function spanFromHash() {
  const match = /(?:^#|&)span=([0-9a-fA-F]+)/.exec(location.hash);
  return match ? match[1].toLowerCase() : null;
}

function render(model) {
  state.model = model;
  state.rows.clear();
  state.critical = criticalPath(model);
  state.overhangs = overhangs(model);
  state.colors.add(model.services);
  document.title = `${model.root.name} · ${model.traceId.slice(0, 8)} · trace viewer`;

  const { axis, grid } = renderAxis(model);
  const rows = h(
    "div",
    { class: "rows", role: "tree", "aria-label": "spans" },
    grid,
    model.order.map(renderRow),
  );
  state.waterfall = h(
    "div",
    {
      class: "waterfall",
      id: "waterfall",
      tabindex: "0",
      "aria-label": "trace waterfall: arrow keys move between spans",
    },
    axis,
    rows,
  );
  state.waterfall.addEventListener("keydown", onKey);
  state.details = h("aside", {
    class: "details",
    id: "details",
    hidden: true,
    "aria-label": "span details",
  });
  const main = h("div", { class: "trace-main" }, state.waterfall, state.details);
  const content = document.getElementById("content");
  content.replaceWith(
    h("div", { id: "content", style: { display: "contents" } }, renderHeader(model), main),
  );
  updateVisibility();
  const wanted = spanFromHash();
  if (wanted && model.byId.has(wanted)) select(wanted, { focus: false });
  document.body.dataset.state = "ready";
}

function showMessage(kind, title, ...body) {
  const content = document.getElementById("content");
  content.replaceWith(
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
  const selected = keepSelection ? state.selected : null;
  const services = getJSON("/api/v3/services").then(
    (b) => state.colors.add(b.services || []),
    () => null,
  );
  try {
    const body = await getJSON(`/api/v3/traces/${traceId}`);
    await services;
    const model = buildModel(traceId, body?.result?.resourceSpans);
    if (!model) throw new HttpError(404, "trace has no spans");
    const collapsed = new Set(keepSelection ? state.collapsed : []);
    render(model);
    state.collapsed = new Set([...collapsed].filter((id) => model.byId.has(id)));
    updateVisibility();
    if (selected && model.byId.has(selected)) select(selected, { focus: false });
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
  if (event.key !== "Escape" || !state.selected || event.target.closest("input, textarea, select"))
    return;
  event.preventDefault();
  select(null);
  state.waterfall?.focus({ preventScroll: true });
});
window.addEventListener("hashchange", () => {
  if (!state.model) return;
  const wanted = spanFromHash();
  if (wanted !== state.selected) select(wanted);
});
load();
