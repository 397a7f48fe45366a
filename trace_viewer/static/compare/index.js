// The comparison page (GET /trace/<a>...<b>, Jaeger UI's compare URL): loads both traces,
// merges them (diff.js, the rules of `ordersim trace diff`) and draws the header — both
// traces, their roots, durations and span counts, how many paths are in both or only in one —
// and the merged tree (render.js). An id that is malformed or unknown is said on the page,
// with a form to correct it.
//
//   diff.js      the merge, pure (tests/js/diff.test.mjs)
//   location.js  the URL and the ids users type, pure (tests/js/compare-location.test.mjs)
//   render.js    the table and the legend
//   picker.js    choosing the other trace (also the trace page's "Compare…" action)
import { HttpError, ServiceColors, fmtClock, fmtMs, getJSON, h, serviceChip } from "../common.js";
import { buildModel } from "../trace/model.js";
import { diffTraces } from "./diff.js";
import { compareUrl, parseComparePath, traceIdFrom } from "./location.js";
import { suggestions } from "./picker.js";
import { renderDiffTable, renderLegend } from "./render.js";

const page = {
  colors: new ServiceColors(),
  diff: null,
  changedOnly: new URLSearchParams(location.hash.replace(/^#/, "")).get("changed") === "1",
};

/** One side: {label, raw, id, model} or {label, raw, id, problem: {kind, text}}. */
async function loadSide(label, side) {
  if (!side.id) {
    return {
      label,
      ...side,
      problem: { kind: "malformed", text: "is not a trace id (32 hex digits)." },
    };
  }
  try {
    const body = await getJSON(`/api/v3/traces/${side.id}`);
    const model = buildModel(side.id, body?.result?.resourceSpans);
    if (!model) throw new HttpError(404, "trace has no spans");
    return { label, ...side, model };
  } catch (err) {
    if (err instanceof HttpError && err.status === 404) {
      return {
        label,
        ...side,
        problem: {
          kind: "not-found",
          text: "was not found: no spans of this trace have been stored (yet).",
        },
      };
    }
    return {
      label,
      ...side,
      problem: { kind: "error", text: `could not be loaded: ${err.message || err}` },
    };
  }
}

function hashFor(changedOnly) {
  return changedOnly ? "#changed=1" : "";
}

/** The two ids, editable, a Compare button, and the swap. */
function idsForm(a, b, root) {
  const field = (name, value, label) =>
    h(
      "label",
      { class: "id-field" },
      h("span", { class: "side-label" }, label),
      h("input", {
        type: "search",
        id: `compare-${name}`,
        name,
        value: value || "",
        list: "compare-suggestions",
        placeholder: "trace id or URL",
        "aria-label": `trace ${label}`,
        autocomplete: "off",
        spellcheck: "false",
      }),
    );
  const error = h("span", { class: "form-error", id: "compare-error", role: "alert" });
  const form = h(
    "form",
    {
      class: "compare-ids",
      id: "compare-ids",
      onsubmit: (event) => {
        event.preventDefault();
        const raw = { a: form.elements.a.value, b: form.elements.b.value };
        const ids = { a: traceIdFrom(raw.a), b: traceIdFrom(raw.b) };
        const bad = ["a", "b"].filter((s) => !ids[s]);
        if (bad.length) {
          error.textContent = bad
            .map((s) => `${s.toUpperCase()}: ${raw[s].trim() ? "not a trace id" : "missing"}`)
            .join(" · ");
          form.elements[bad[0]].focus();
          return;
        }
        location.assign(compareUrl(ids.a, ids.b) + hashFor(page.changedOnly));
      },
    },
    field("a", a.raw, "A"),
    h(
      "button",
      {
        type: "button",
        id: "swap",
        title: "Swap A and B",
        onclick: () => location.assign(compareUrl(b.raw, a.raw) + hashFor(page.changedOnly)),
      },
      "⇄ Swap",
    ),
    field("b", b.raw, "B"),
    h("button", { type: "submit", class: "primary" }, "Compare"),
    error,
    suggestions("compare-suggestions", root, [a.id, b.id]),
  );
  return form;
}

function traceLine(side) {
  const { model, label } = side;
  const root = model.root;
  return h(
    "div",
    { class: `side-line side-${label.toLowerCase()}`, id: `side-${label.toLowerCase()}` },
    h("span", { class: "side-label" }, label),
    serviceChip(root.service, page.colors),
    h("span", { class: "op", title: root.name }, root.name),
    root.httpStatus !== null
      ? h(
          "span",
          {
            class: `http-status s${String(root.httpStatus)[0]}`,
            title: "the root span's HTTP status",
          },
          root.httpStatus,
        )
      : null,
    h(
      "a",
      { class: "trace-link mono", href: `/trace/${model.traceId}`, title: "Open this trace" },
      model.traceId,
    ),
    h("span", { class: "fact" }, h("b", { class: "duration" }, fmtMs(model.duration))),
    h("span", { class: "fact" }, h("b", { class: "span-count" }, String(model.spans.length)), " spans"),
    model.realErrorCount
      ? h(
          "span",
          { class: "badge error", title: "spans with status ERROR that no injected fault caused" },
          `⚠ ${model.realErrorCount} error${model.realErrorCount > 1 ? "s" : ""}`,
        )
      : null,
    model.faultCount
      ? h(
          "span",
          { class: "badge fault", title: "spans an injected fault touched" },
          `⚡ ${model.faultCount} injected`,
        )
      : null,
    h("span", { class: "muted when" }, fmtClock(model.startAbs, { withDate: true })),
  );
}

function renderHeader(a, b, diff) {
  const { both, only_a: onlyA, only_b: onlyB } = diff.counts;
  return h(
    "header",
    { class: "trace-head compare-head" },
    h("div", { class: "compare-top" }, h("h1", {}, "Compare traces"), idsForm(a, b, a.model.root)),
    traceLine(a),
    traceLine(b),
    h(
      "div",
      { class: "compare-summary", id: "compare-summary" },
      h(
        "span",
        { id: "compare-counts" },
        h("span", { id: "count-both" }, `${both} in both`),
        " · ",
        h("span", { class: "only-a-text", id: "count-only-a" }, `${onlyA} only in A`),
        " · ",
        h("span", { class: "only-b-text", id: "count-only-b" }, `${onlyB} only in B`),
      ),
      h("span", { class: "muted" }, "(paths of service and operation from the root)"),
      h(
        "label",
        { class: "check" },
        h("input", {
          type: "checkbox",
          id: "changed-only",
          checked: page.changedOnly,
          onchange: (event) => {
            page.changedOnly = event.target.checked;
            history.replaceState(null, "", location.pathname + hashFor(page.changedOnly));
            drawTable();
          },
        }),
        " only differences",
      ),
    ),
    renderLegend(),
  );
}

function drawTable() {
  const table = renderDiffTable(page.diff, page.colors, { changedOnly: page.changedOnly });
  document.getElementById("diff-table").replaceWith(table);
}

function render(a, b) {
  page.diff = diffTraces(a.model, b.model);
  page.colors.add([...a.model.services, ...b.model.services]);
  document.title = `${a.id.slice(0, 8)} vs ${b.id.slice(0, 8)} · compare · trace viewer`;
  const table = renderDiffTable(page.diff, page.colors, { changedOnly: page.changedOnly });
  document.getElementById("content").replaceWith(
    h(
      "div",
      { id: "content", class: "compare-content" },
      renderHeader(a, b, page.diff),
      h("div", { class: "diff-scroll" }, table),
    ),
  );
  document.body.dataset.state = "ready";
}

/** What is wrong with each side, the form to correct it, and links to what did load. */
function renderProblems(a, b) {
  const line = (side) =>
    h(
      "li",
      { id: `problem-${side.label.toLowerCase()}`, "data-kind": side.problem?.kind || "ok" },
      h("b", {}, side.label, " "),
      side.model
        ? [
            h("a", { href: `/trace/${side.id}` }, h("code", {}, side.id)),
            `: ${side.model.root.name}, ${side.model.spans.length} spans.`,
          ]
        : [h("code", {}, side.raw), ` ${side.problem.text}`],
    );
  const malformed = [a, b].some((s) => s.problem?.kind === "malformed");
  const title = malformed
    ? "Not a trace id"
    : [a, b].every((s) => s.problem?.kind === "not-found")
      ? "Traces not found"
      : [a, b].some((s) => s.problem?.kind === "not-found")
        ? "Trace not found"
        : "Could not load the traces";
  const root = (a.model || b.model)?.root || null;
  document.getElementById("content").replaceWith(
    h(
      "div",
      { id: "content" },
      h(
        "div",
        {
          class: `message compare-problem ${malformed ? "error" : ""}`.trim(),
          role: "alert",
        },
        h("h2", {}, title),
        h("ul", { class: "problems" }, line(a), line(b)),
        h("p", {}, "Correct the ids, or paste trace URLs, and compare again:"),
        idsForm(a, b, root),
        h(
          "p",
          {},
          h("button", { type: "button", onclick: () => load() }, "↻ Refresh"),
          " ",
          h("a", { href: "/" }, "← All traces"),
        ),
      ),
    ),
  );
  const failed = malformed || [a, b].some((s) => s.problem?.kind === "error");
  document.body.dataset.state = failed ? "error" : "not-found";
}

async function load() {
  const sides = parseComparePath(location.pathname);
  if (!sides) {
    // The server only serves this page for /trace/<a>...<b>; say so rather than go blank.
    document.getElementById("content").replaceWith(
      h(
        "div",
        { id: "content" },
        h(
          "div",
          { class: "message error", role: "alert" },
          h("h2", {}, "Not a comparison"),
          h("p", {}, "Compare two traces at /trace/<trace id A>...<trace id B>."),
        ),
      ),
    );
    document.body.dataset.state = "error";
    return;
  }
  const services = getJSON("/api/v3/services").then(
    (body) => page.colors.add(body.services || []),
    () => null,
  );
  const [a, b] = await Promise.all([loadSide("A", sides.a), loadSide("B", sides.b)]);
  await services;
  if (a.problem || b.problem) renderProblems(a, b);
  else render(a, b);
}

load();
