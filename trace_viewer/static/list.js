// The trace list (GET /): traces from /api/summaries, searched as Jaeger searches (service,
// operation, tags, durations, lookback or a time range, limit), sorted, and plotted duration
// over time. The search lives in the URL's query string. Two traces ticked in the list open the
// comparison page, as in Jaeger UI. The pure parts are search.js's.
import { compareUrl } from "/static/compare/location.js";
import { ServiceColors, fmtAgo, fmtClock, fmtMs, fmtTick, getJSON, h, serviceChip } from "/static/common.js";
import {
  DEFAULT_LIMIT,
  LIMITS,
  LOOKBACKS,
  OUTCOMES,
  SORTS,
  classifyOutcome,
  comparePair,
  filtersFromQuery,
  formatTags,
  normalizeTraceId,
  parseTags,
  queryFromFilters,
  scatterLayout,
  sortTraces,
} from "/static/search.js";

const REFRESH_MS = 5000;
const COLUMNS = 10;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
const form = $("filters");
const serviceSelect = $("service");
const operationSelect = $("operation");
const tagsInput = $("tags");
const lookbackSelect = $("lookback");
const startInput = $("start");
const endInput = $("end");
const minDurationInput = $("minDuration");
const maxDurationInput = $("maxDuration");
const limitSelect = $("limit");
const errorCheck = $("error");
const sortSelect = $("sort");
const autoCheck = $("auto");
const statusEl = $("status");
const compareButton = $("compare-picked");
const tbody = document.querySelector("#traces tbody");
const scatter = $("scatter");

const colors = new ServiceColors();
let seen = null; // trace ids shown so far (null before the first load: nothing is "fresh")
let rows = []; // the last answer, as the API sent it
let loading = null; // AbortController of the request in flight
let timer = null;
let knownServices = null;
const picked = new Map(); // trace id -> its row, ticked to compare (kept across refreshes)

// ---------------------------------------------------------------------------------------------
// The form <-> the filters (search.js reads and writes the URL)

/** µs since the epoch from a datetime-local value (local time), or "". */
function micros(localValue) {
  const ms = new Date(localValue).getTime();
  return Number.isFinite(ms) ? String(ms * 1000) : "";
}

/** A datetime-local value (local time, to the second) from µs since the epoch. */
function localValue(us) {
  const date = new Date(Number(us) / 1000);
  if (!us || Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

function filters() {
  return {
    service: serviceSelect.value,
    operation: serviceSelect.value ? operationSelect.value : "",
    tags: parseTags(tagsInput.value).tags,
    lookback: lookbackSelect.value,
    start: lookbackSelect.value === "custom" ? micros(startInput.value) : "",
    end: lookbackSelect.value === "custom" ? micros(endInput.value) : "",
    minDuration: minDurationInput.value.trim(),
    maxDuration: maxDurationInput.value.trim(),
    limit: limitSelect.value,
    error: errorCheck.checked ? "true" : "",
    sort: sortSelect.value,
  };
}

function fill(select, options, value) {
  select.replaceChildren(...options.map((o) => h("option", { value: o.value }, o.label)));
  if (value && !options.some((o) => o.value === value)) {
    select.append(h("option", { value }, value)); // a value from a hand-edited URL stays visible
  }
  select.value = value ?? options[0].value;
}

function showForm(f) {
  tagsInput.value = formatTags(f.tags);
  fill(lookbackSelect, LOOKBACKS, f.lookback || "");
  startInput.value = localValue(f.start);
  endInput.value = localValue(f.end);
  showRange();
  minDurationInput.value = f.minDuration || "";
  maxDurationInput.value = f.maxDuration || "";
  fill(limitSelect, LIMITS.map((n) => ({ value: n, label: n })), f.limit || DEFAULT_LIMIT);
  errorCheck.checked = f.error === "true";
  fill(sortSelect, SORTS, f.sort);
}

function showRange() {
  for (const label of document.querySelectorAll(".custom-range")) {
    label.hidden = lookbackSelect.value !== "custom";
  }
}

function setOptions(select, names, selected, allLabel) {
  const current = selected ?? select.value;
  const values = [...names];
  if (current && !values.includes(current)) values.push(current); // keep a stale choice visible
  select.replaceChildren(
    h("option", { value: "" }, allLabel),
    ...values.map((name) => h("option", { value: name }, name)),
  );
  select.value = current || "";
}

async function loadServices(selected) {
  try {
    const body = await getJSON("/api/v3/services");
    const names = body.services || [];
    colors.add(names);
    const key = JSON.stringify([names, selected]);
    if (key === knownServices) return; // unchanged: leave the control alone (it may be open)
    knownServices = key;
    setOptions(serviceSelect, names, selected, "All services");
  } catch (err) {
    showStatus(`services: ${err.message}`, true);
  }
}

async function loadOperations(selected) {
  const service = serviceSelect.value;
  operationSelect.disabled = !service;
  if (!service) {
    setOptions(operationSelect, [], "", "All operations");
    return;
  }
  try {
    const body = await getJSON(`/api/v3/operations?service=${encodeURIComponent(service)}`);
    const names = [...new Set((body.operations || []).map((op) => op.name))].sort();
    setOptions(operationSelect, names, selected, "All operations");
  } catch (err) {
    showStatus(`operations: ${err.message}`, true);
  }
}

function showStatus(text, bad = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle("bad", bad);
}

/** The tags box says what it cannot read, and the search waits until it can. */
function tagsValid() {
  const { error } = parseTags(tagsInput.value);
  tagsInput.setCustomValidity(error ? `Tags: ${error}` : "");
  return !error;
}

// ---------------------------------------------------------------------------------------------
// The table

function outcomeBadge(row) {
  const { kind, label } = classifyOutcome(row);
  return h("span", { class: `outcome outcome-${kind}`, title: OUTCOMES[kind] }, label);
}

/** Two overlapping sheets: the usual "copy" icon (no icon font: system fonts only). */
function copyIcon() {
  return svg(
    "svg",
    { viewBox: "0 0 16 16", width: 12, height: 12, "aria-hidden": "true", class: "icon" },
    svg("rect", { x: 5, y: 5, width: 9, height: 9, rx: 1.5 }),
    svg("path", { d: "M3 11V3.5A1.5 1.5 0 0 1 4.5 2H11" }),
  );
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Without the async clipboard (an insecure origin): select a hidden field and copy.
    const field = h("textarea", { class: "offscreen", readonly: true }, text);
    document.body.append(field);
    field.select();
    document.execCommand("copy");
    field.remove();
  }
  button.classList.add("copied");
  button.title = "Copied";
  setTimeout(() => {
    button.classList.remove("copied");
    button.title = "Copy the trace id";
  }, 1200);
}

/** The Compare button: enabled when exactly two traces are ticked. */
function showPicked() {
  const pair = comparePair([...picked.values()]);
  compareButton.disabled = !pair;
  compareButton.title = pair
    ? "Compare the two ticked traces: the earlier one as A, the later as B"
    : `Tick two traces to compare them (${picked.size} ticked)`;
  compareButton.dataset.picked = String(picked.size);
}

function comparePicked() {
  const pair = comparePair([...picked.values()]);
  if (pair) window.location.href = compareUrl(pair.a, pair.b);
}

function pickCell(trace) {
  return h(
    "td",
    { class: "pick" },
    h(
      "label",
      { title: "Tick two traces to compare them" },
      h("input", {
        type: "checkbox",
        "aria-label": `Compare trace ${trace.traceID}`,
        checked: picked.has(trace.traceID),
        onchange: (event) => {
          if (event.target.checked) picked.set(trace.traceID, trace);
          else picked.delete(trace.traceID);
          showPicked();
        },
      }),
    ),
  );
}

function traceRow(trace, maxDuration, fresh) {
  const href = `/trace/${trace.traceID}`;
  const errors = Number(trace.errorCount) || 0;
  const faults = Number(trace.faultCount) || 0;
  const duration = Number(trace.durationNano) || 0;
  const share = maxDuration > 0 ? Math.max(1, (100 * duration) / maxDuration) : 0;
  return h(
    "tr",
    {
      class: [errors ? "has-error" : "", faults ? "has-fault" : "", fresh ? "fresh" : ""],
      "data-trace-id": trace.traceID,
      "data-outcome": classifyOutcome(trace).kind,
      onclick: (event) => {
        if (event.target.closest("a, button, label") || window.getSelection().toString()) return;
        if (event.ctrlKey || event.metaKey) window.open(href, "_blank");
        else window.location.href = href;
      },
    },
    pickCell(trace),
    h(
      "td",
      { class: "when", title: fmtClock(trace.startTimeUnixNano, { withDate: true }) },
      fmtClock(trace.startTimeUnixNano),
      h("div", { class: "muted" }, fmtAgo(trace.startTimeUnixNano)),
    ),
    h("td", {}, outcomeBadge(trace)),
    h(
      "td",
      {},
      h(
        "div",
        { class: "root" },
        serviceChip(trace.rootService || "?", colors),
        h("a", { href, title: `${trace.rootName} (${trace.rootService})` }, trace.rootName || "?"),
      ),
    ),
    h(
      "td",
      { class: "services" },
      h("div", { class: "chips" }, (trace.services || []).map((s) => serviceChip(s, colors))),
    ),
    h("td", { class: "num" }, String(trace.spanCount)),
    h(
      "td",
      { class: "num" },
      errors
        ? h(
            "span",
            {
              class: "badge error",
              title: `${errors} span(s) with status ERROR that no injected fault caused`,
            },
            `⚠ ${errors}`,
          )
        : h("span", { class: "muted", title: "no real errors" }, "—"),
    ),
    h(
      "td",
      { class: "num faults" },
      faults
        ? h(
            "span",
            {
              class: "badge fault",
              title: `${faults} span(s) an injected fault touched (ordersim.fault.injected)`,
            },
            `⚡ ${faults}`,
          )
        : h("span", { class: "muted", title: "no injected faults" }, "—"),
    ),
    h(
      "td",
      { class: "num" },
      h(
        "div",
        { class: "durcell" },
        h("span", {}, fmtMs(duration)),
        h("span", { class: "durbar", "aria-hidden": "true" }, h("span", { style: { width: `${share}%` } })),
      ),
    ),
    h(
      "td",
      { class: "tid" },
      h("a", { href, class: "tid" }, trace.traceID),
      h(
        "button",
        {
          type: "button",
          class: "small copy",
          title: "Copy the trace id",
          "aria-label": `Copy trace id ${trace.traceID}`,
          "data-copy": trace.traceID,
          onclick: (event) => copy(trace.traceID, event.currentTarget),
        },
        copyIcon(),
      ),
    ),
  );
}

function emptyRow(text, detail) {
  return h(
    "tr",
    { class: "empty" },
    h("td", { colspan: String(COLUMNS) }, h("div", {}, text), detail && h("div", { class: "muted" }, detail)),
  );
}

// ---------------------------------------------------------------------------------------------
// The plot: duration over time, a dot per trace coloured by outcome; a dot opens its trace.

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child);
  }
  return el;
}

/** A time axis label as fine as its step: a date, a minute, a second or a millisecond. */
function tickLabel(ms, stepMs) {
  const text = fmtClock(String(BigInt(Math.round(ms)) * 1000000n), { withDate: true });
  const [date, time] = text.includes(" ") ? text.split(" ") : ["", text];
  if (stepMs >= 86_400_000) return date || time.slice(0, 5);
  if (stepMs >= 60_000) return time.slice(0, 5);
  return time.slice(0, stepMs >= 1000 ? 8 : 12);
}

function drawScatter(shown) {
  const width = Math.max(320, Math.floor(scatter.getBoundingClientRect().width) || 960);
  const height = 170;
  const margin = { left: 64, right: 16, top: 10, bottom: 24 };
  scatter.setAttribute("viewBox", `0 0 ${width} ${height}`);
  scatter.setAttribute("height", String(height));
  const { points, xTicks, yTicks } = scatterLayout(shown, { width, height, margin });
  const bottom = height - margin.bottom;
  const axes = [
    ...yTicks.map((t) =>
      svg(
        "g",
        { class: "tick" },
        svg("line", { x1: margin.left, x2: width - margin.right, y1: t.y, y2: t.y }),
        svg("text", { x: margin.left - 6, y: t.y + 4, "text-anchor": "end" }, fmtTick(t.ns, t.stepNs)),
      ),
    ),
    ...xTicks.map((t) =>
      svg(
        "text",
        { class: "tick", x: t.x, y: bottom + 16, "text-anchor": "middle" },
        tickLabel(t.ms, t.stepMs),
      ),
    ),
  ];
  const dots = points.map((p) => {
    const row = p.row;
    const title = `${classifyOutcome(row).label} · ${row.rootName} · ${fmtMs(row.durationNano)} · ${fmtClock(row.startTimeUnixNano, { withDate: true })}`;
    return svg(
      "a",
      { href: `/trace/${p.traceID}`, class: "dot-link", "data-trace-id": p.traceID },
      svg(
        "circle",
        { class: `dot outcome-${p.kind}`, cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: 4 },
        svg("title", {}, title),
      ),
    );
  });
  scatter.replaceChildren(
    svg("line", { class: "axis", x1: margin.left, x2: width - margin.right, y1: bottom, y2: bottom }),
    ...axes,
    ...dots,
  );
  const kinds = new Set(points.map((p) => p.kind));
  $("legend").replaceChildren(
    ...Object.entries(OUTCOMES)
      .filter(([kind]) => kinds.has(kind))
      .map(([kind, label]) =>
        h("span", { class: "legend-item" }, h("span", { class: `outcome-swatch outcome-${kind}` }), label),
      ),
  );
}

// ---------------------------------------------------------------------------------------------
// Loading and showing

function render() {
  const f = filters();
  const shown = sortTraces(rows, f.sort);
  const maxDuration = Math.max(0, ...rows.map((t) => Number(t.durationNano) || 0));
  const trs = shown.map((t) => traceRow(t, maxDuration, seen !== null && !seen.has(t.traceID)));
  if (!trs.length) {
    const filtered = queryFromFilters({ ...f, sort: "recent" }) !== "";
    trs.push(
      filtered
        ? emptyRow("No traces match this search.")
        : emptyRow(
            "No traces yet.",
            "Start the services (make up) and place an order; traces appear here within a second.",
          ),
    );
  }
  tbody.replaceChildren(...trs);
  drawScatter(rows);
  $("count").textContent = `${rows.length} trace${rows.length === 1 ? "" : "s"}`;
}

function keepInUrl() {
  const search = queryFromFilters(filters());
  history.replaceState(null, "", search ? `/?${search}` : "/");
}

async function loadTraces() {
  if (!tagsValid()) {
    showStatus(tagsInput.validationMessage, true);
    return;
  }
  if (loading) loading.abort();
  const controller = new AbortController();
  loading = controller;
  const f = filters();
  keepInUrl();
  showStatus("loading…");
  try {
    const body = await getJSON(`/api/summaries?${queryFromFilters(f, { forApi: true })}`, {
      signal: controller.signal,
    });
    rows = body.data || [];
    colors.add(rows.flatMap((t) => t.services || []));
    render();
    seen = new Set(rows.map((t) => t.traceID));
    showStatus(`updated ${new Date().toTimeString().slice(0, 8)}`);
    document.body.dataset.state = "ready";
  } catch (err) {
    if (err.name === "AbortError") return;
    showStatus(err.message, true);
    if (seen === null) tbody.replaceChildren(emptyRow("Could not load traces.", err.message));
    document.body.dataset.state = "error";
  } finally {
    if (loading === controller) loading = null;
  }
}

function schedule() {
  clearInterval(timer);
  timer = null;
  if (autoCheck.checked) {
    timer = setInterval(() => {
      if (document.visibilityState === "visible" && !loading) refresh();
    }, REFRESH_MS);
  }
}

async function refresh() {
  await loadServices(serviceSelect.value);
  await loadTraces();
}

function openTrace(event) {
  event.preventDefault();
  const input = $("trace-id");
  const id = normalizeTraceId(input.value);
  if (!id) {
    input.setCustomValidity("A trace id is 1 to 32 hex digits");
    input.reportValidity();
    return;
  }
  window.location.href = `/trace/${id}`;
}

async function start() {
  const f = filtersFromQuery(location.search);
  showForm(f);
  await loadServices(f.service || "");
  await loadOperations(f.operation || "");
  await loadTraces();

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    loadTraces();
  });
  serviceSelect.addEventListener("change", async () => {
    await loadOperations("");
    loadTraces();
  });
  for (const input of [operationSelect, limitSelect, errorCheck]) input.addEventListener("change", loadTraces);
  lookbackSelect.addEventListener("change", () => {
    showRange();
    if (lookbackSelect.value !== "custom" || (startInput.value && endInput.value)) loadTraces();
  });
  for (const input of [startInput, endInput, minDurationInput, maxDurationInput]) {
    input.addEventListener("change", () => {
      if (input.checkValidity()) loadTraces();
    });
  }
  tagsInput.addEventListener("input", tagsValid);
  sortSelect.addEventListener("change", () => {
    keepInUrl();
    render();
  });
  compareButton.addEventListener("click", comparePicked);
  showPicked();
  $("jump").addEventListener("submit", openTrace);
  $("trace-id").addEventListener("input", (event) => event.target.setCustomValidity(""));
  $("refresh").addEventListener("click", refresh);
  autoCheck.addEventListener("change", schedule);
  window.addEventListener("resize", () => drawScatter(rows));
  document.addEventListener("keydown", (event) => {
    if (
      event.key === "r" &&
      !event.ctrlKey &&
      !event.metaKey &&
      !/INPUT|SELECT|TEXTAREA/.test(event.target.tagName)
    ) {
      refresh();
    }
  });
  schedule();
}

start();
