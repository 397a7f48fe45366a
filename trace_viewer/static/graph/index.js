// The service graph page (GET /dependencies, Jaeger UI's URL for it): which service calls
// which over a lookback, from GET /api/dependencies, with each edge's calls, failures and p99.
// A service or an edge leads to the trace list, filtered to its traces.
//
//   model.js     the API's links as nodes and edges, their labels and colour steps; pure
//                (tests/js/graph-model.test.mjs)
//   layout.js    the layered layout; pure (tests/js/graph-layout.test.mjs)
//   location.js  the page's URL and its links; pure (tests/js/graph-location.test.mjs)
//   render.js    the SVG and the legend
// Browser tests: tests/test_service_graph.py.
import { ServiceColors, fmtClock, getJSON, h } from "../common.js";
import { layoutGraph } from "./layout.js";
import { LOOKBACKS, dependenciesUrl, formatPageQuery, parsePageQuery } from "./location.js";
import { buildGraph } from "./model.js";
import { NAME_FONT, renderGraph, renderLegend, textMeasurer } from "./render.js";

const parsed = parsePageQuery(location.search);
const page = {
  state: { lookback: parsed.lookback, endTs: parsed.endTs },
  problems: parsed.problems,
  colors: new ServiceColors(),
  loading: null, // AbortController of the request in flight
};

const lookbackSelect = document.getElementById("lookback");
const statusEl = document.getElementById("status");

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/** A time in ms since the epoch, with its date. */
function clock(ms) {
  return fmtClock(BigInt(Math.floor(ms)) * 1000000n, { withDate: true });
}

function windowText(end, lookback) {
  return `${clock(end - lookback.ms)} – ${clock(end)}`;
}

function summary(graph, lookback, end) {
  const calls = graph.edges.reduce((n, e) => n + e.calls, 0);
  const known = graph.edges.every((e) => e.errors !== null);
  const failed = graph.edges.reduce((n, e) => n + (e.errors || 0), 0);
  const services = graph.nodes.filter((n) => n.kind === "service").length;
  return h(
    "div",
    { class: "graph-summary", id: "graph-summary" },
    h("b", {}, plural(services, "service")),
    " · ",
    h("b", {}, plural(graph.edges.length, "edge")),
    " · ",
    h("b", {}, plural(calls, "call")),
    known ? [" · ", h("b", { class: failed ? "failed" : "" }, `${failed} failed`)] : null,
    h(
      "span",
      { class: "muted" },
      // "last hour: …" only when it is: a fixed endTs is a past window.
      ` · ${page.state.endTs === null ? `${lookback.label.toLowerCase()}: ` : ""}` +
        windowText(end, lookback),
    ),
  );
}

function problemNote() {
  return page.problems.length
    ? h("p", { class: "warnings", id: "graph-problems", role: "alert" }, page.problems.join(" · "))
    : null;
}

function show(...children) {
  document
    .getElementById("content")
    .replaceWith(h("div", { id: "content", class: "graph-content" }, problemNote(), ...children));
}

function showStatus(text, bad = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle("bad", bad);
}

/** "No calls in the last hour", or "… in the hour before 10:02:11.000" for a past window. */
function noCallsText(lookback, end) {
  if (page.state.endTs === null) return `No calls in the ${lookback.label.toLowerCase()}`;
  const span = lookback.label.replace(/^Last /, "");
  return `No calls in the ${span} before ${clock(end)}`;
}

function renderEmpty(lookback, end) {
  const longer = LOOKBACKS.find((l) => l.ms > lookback.ms);
  show(
    h(
      "div",
      { class: "message", id: "graph-empty" },
      h("h2", {}, noCallsText(lookback, end)),
      h("p", { class: "muted" }, windowText(end, lookback)),
      h(
        "p",
        {},
        "A call is a CLIENT span of one service whose child is a SERVER span of another. " +
          "Start the services (make up) and place an order (ordersim order), then refresh",
        longer ? [", or look further back: ", lookbackLink(longer)] : null,
        ".",
      ),
    ),
  );
}

function lookbackLink(lookback) {
  return h(
    "a",
    {
      href: `/dependencies${formatPageQuery({ ...page.state, lookback })}`,
      onclick: (event) => {
        event.preventDefault();
        choose(lookback);
      },
    },
    lookback.label.toLowerCase(),
  );
}

function render(graph, end) {
  const { lookback } = page.state;
  if (!graph.edges.length) {
    renderEmpty(lookback, end);
    document.body.dataset.state = "empty";
    return;
  }
  page.colors.add(graph.nodes.filter((n) => n.kind === "service").map((n) => n.name));
  const layout = layoutGraph(graph, { measure: textMeasurer(NAME_FONT) });
  show(
    h(
      "header",
      { class: "graph-head" },
      summary(graph, lookback, end),
      renderLegend({
        unknown: graph.edges.some((e) => e.errors === null),
        unanswered: graph.nodes.some((n) => n.kind === "unanswered"),
        back: layout.edges.some((e) => e.kind === "back"),
      }),
    ),
    h("div", { class: "graph-scroll" }, renderGraph(graph, layout, page.colors, page.state)),
  );
  document.body.dataset.state = "ready";
}

async function load() {
  if (page.loading) page.loading.abort();
  const controller = new AbortController();
  page.loading = controller;
  const end = page.state.endTs ?? Date.now();
  showStatus("loading…");
  try {
    // The services with spans of their own, to tell a callee that never answered; the
    // graph is drawn without them if they cannot be had.
    const [links, services] = await Promise.all([
      getJSON(dependenciesUrl(page.state, end), { signal: controller.signal }),
      getJSON("/api/v3/services", { signal: controller.signal }).then(
        (body) => body.services || [],
        (err) => (err.name === "AbortError" ? Promise.reject(err) : null),
      ),
    ]);
    if (services) page.colors.add(services); // in the list's order: the list's colours
    render(buildGraph(links.data, { services }), end);
    showStatus(`updated ${new Date().toTimeString().slice(0, 8)}`);
  } catch (err) {
    if (err.name === "AbortError") return;
    show(
      h(
        "div",
        { class: "message error", id: "graph-error", role: "alert" },
        h("h2", {}, "Could not load the service graph"),
        h("p", {}, h("code", {}, dependenciesUrl(page.state, end)), `: ${err.message}`),
        h("p", {}, h("button", { type: "button", onclick: () => load() }, "↻ Retry")),
      ),
    );
    showStatus(err.message, true);
    document.body.dataset.state = "error";
  } finally {
    if (page.loading === controller) page.loading = null;
  }
}

function choose(lookback) {
  page.state = { ...page.state, lookback };
  page.problems = [];
  lookbackSelect.value = lookback.key;
  history.replaceState(null, "", `/dependencies${formatPageQuery(page.state)}`);
  load();
}

function start() {
  lookbackSelect.replaceChildren(...LOOKBACKS.map((l) => h("option", { value: l.key }, l.label)));
  lookbackSelect.value = page.state.lookback.key;
  lookbackSelect.addEventListener("change", () =>
    choose(LOOKBACKS.find((l) => l.key === lookbackSelect.value)),
  );
  const untilNow = document.getElementById("until-now");
  untilNow.hidden = page.state.endTs === null;
  untilNow.addEventListener("click", () => {
    page.state = { ...page.state, endTs: null };
    page.problems = [];
    untilNow.hidden = true;
    history.replaceState(null, "", `/dependencies${formatPageQuery(page.state)}`);
    load();
  });
  document.getElementById("refresh").addEventListener("click", () => load());
  load();
}

start();
