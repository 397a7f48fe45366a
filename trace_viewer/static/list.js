// The trace list (GET /): recent traces from /api/summaries, filtered by service, operation,
// minimum duration and errors; the filters live in the URL's query string.
import { ServiceColors, fmtAgo, fmtClock, fmtMs, getJSON, h, serviceChip } from "/static/common.js";

const REFRESH_MS = 5000;
const form = document.getElementById("filters");
const serviceSelect = document.getElementById("service");
const operationSelect = document.getElementById("operation");
const minDurationInput = document.getElementById("minDuration");
const limitSelect = document.getElementById("limit");
const errorCheck = document.getElementById("error");
const autoCheck = document.getElementById("auto");
const statusEl = document.getElementById("status");
const tbody = document.querySelector("#traces tbody");

const colors = new ServiceColors();
let seen = null; // trace ids shown so far (null before the first load: nothing is "fresh")
let loading = null; // AbortController of the request in flight
let timer = null;
let knownServices = null;

function filters() {
  return {
    service: serviceSelect.value,
    operation: serviceSelect.value ? operationSelect.value : "",
    minDuration: minDurationInput.value.trim(),
    error: errorCheck.checked,
    limit: limitSelect.value,
  };
}

function query(f) {
  const params = new URLSearchParams();
  if (f.service) params.set("service", f.service);
  if (f.operation) params.set("operation", f.operation);
  if (f.minDuration) params.set("minDuration", f.minDuration);
  if (f.error) params.set("error", "true");
  if (f.limit && f.limit !== "50") params.set("limit", f.limit);
  return params;
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
    const names = (body.operations || []).map((op) => op.name).sort();
    setOptions(operationSelect, names, selected, "All operations");
  } catch (err) {
    showStatus(`operations: ${err.message}`, true);
  }
}

function showStatus(text, bad = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle("bad", bad);
}

function traceRow(trace, maxDuration, fresh) {
  const href = `/trace/${trace.traceID}`;
  const errors = Number(trace.errorCount) || 0;
  const faults = Number(trace.faultCount) || 0;
  const duration = Number(trace.durationNano) || 0;
  const share = maxDuration > 0 ? Math.max(1, (100 * duration) / maxDuration) : 0;
  const row = h(
    "tr",
    {
      class: [errors ? "has-error" : "", faults ? "has-fault" : "", fresh ? "fresh" : ""]
        .join(" ")
        .replace(/\s+/g, " ")
        .trim(),
      "data-trace-id": trace.traceID,
      onclick: (event) => {
        if (event.target.closest("a") || window.getSelection().toString()) return;
        if (event.ctrlKey || event.metaKey) window.open(href, "_blank");
        else window.location.href = href;
      },
    },
    h(
      "td",
      { class: "when", title: fmtClock(trace.startTimeUnixNano, { withDate: true }) },
      fmtClock(trace.startTimeUnixNano),
      h("div", { class: "muted" }, fmtAgo(trace.startTimeUnixNano)),
    ),
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
      {},
      h(
        "div",
        { class: "chips" },
        (trace.services || []).map((s) => serviceChip(s, colors)),
      ),
    ),
    h("td", { class: "num" }, String(trace.spanCount)),
    h(
      "td",
      { class: "num" },
      errors
        ? h(
            "span",
            { class: "badge error", title: `${errors} span(s) with status ERROR` },
            `⚠ ${errors}`,
          )
        : h("span", { class: "muted", title: "no error spans" }, "—"),
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
        h(
          "span",
          { class: "durbar", "aria-hidden": "true" },
          h("span", { style: { width: `${share}%` } }),
        ),
      ),
    ),
    h(
      "td",
      { class: "tid" },
      h("a", { href, class: "tid", title: trace.traceID }, trace.traceID.slice(0, 12) + "…"),
    ),
  );
  return row;
}

function emptyRow(text, detail) {
  return h(
    "tr",
    { class: "empty" },
    h("td", { colspan: "8" }, h("div", {}, text), detail && h("div", { class: "muted" }, detail)),
  );
}

async function loadTraces() {
  if (loading) loading.abort();
  const controller = new AbortController();
  loading = controller;
  const f = filters();
  const params = query(f);
  const search = params.toString();
  history.replaceState(null, "", search ? `/?${search}` : "/");
  showStatus("loading…");
  try {
    const body = await getJSON(`/api/summaries?${params}`, { signal: controller.signal });
    const traces = body.data || [];
    colors.add(traces.flatMap((t) => t.services || []));
    const maxDuration = Math.max(0, ...traces.map((t) => Number(t.durationNano) || 0));
    const rows = traces.map((t) => traceRow(t, maxDuration, seen !== null && !seen.has(t.traceID)));
    if (!rows.length) {
      const filtered = f.service || f.minDuration || f.error;
      rows.push(
        filtered
          ? emptyRow("No traces match these filters.")
          : emptyRow(
              "No traces yet.",
              "Start the services (make up) and place an order; traces appear here within a second.",
            ),
      );
    }
    tbody.replaceChildren(...rows);
    seen = new Set(traces.map((t) => t.traceID));
    showStatus(
      `${traces.length} trace${traces.length === 1 ? "" : "s"} · updated ${new Date().toTimeString().slice(0, 8)}`,
    );
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

async function start() {
  const params = new URLSearchParams(location.search);
  minDurationInput.value = params.get("minDuration") || "";
  errorCheck.checked = params.get("error") === "true";
  const limit = params.get("limit");
  if (limit) {
    if (![...limitSelect.options].some((o) => o.value === limit))
      limitSelect.append(h("option", {}, limit));
    limitSelect.value = limit;
  }
  await loadServices(params.get("service") || "");
  await loadOperations(params.get("operation") || "");
  await loadTraces();

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    loadTraces();
  });
  serviceSelect.addEventListener("change", async () => {
    await loadOperations("");
    loadTraces();
  });
  for (const input of [operationSelect, limitSelect, errorCheck])
    input.addEventListener("change", loadTraces);
  minDurationInput.addEventListener("change", () => {
    if (minDurationInput.checkValidity()) loadTraces();
  });
  document.getElementById("refresh").addEventListener("click", refresh);
  autoCheck.addEventListener("change", schedule);
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
