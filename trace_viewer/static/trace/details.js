// The details panel of the selected span (rendering), shared by every view of the trace page.
import { fmtClock, fmtMs, h, serviceChip, valueText } from "../common.js";
import { pathTime } from "./critical-path/compute.js";
import { spanLogs } from "./logs/render.js";
import { FAULT_ATTRIBUTE, KINDS, STATUS } from "./model.js";

export const kindName = (kind) => KINDS[kind] || `kind ${kind}`;

/** What an injected fault did to a span, from its fault.injected events. */
export function faultText(span) {
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
export function overhangText(overhang) {
  const parts = [];
  if (overhang.before) parts.push(`starts ${fmtMs(overhang.before)} before`);
  if (overhang.after) parts.push(`ends ${fmtMs(overhang.after)} after`);
  return `${parts.join(" and ")} its parent`;
}

/** Why a span can stick out of its parent. */
export function overhangCause(overhang) {
  return overhang.calledBy
    ? "A SERVER span outliving the CLIENT span that called it: the client saw the whole " +
        "response before the server's span ended — scheduling on one machine, clock skew " +
        "between two."
    : "A child outliving its parent: the parent ended without waiting for it (or, across " +
        "machines, clock skew).";
}

/** "links to 1 span in another trace" for the row's ↩ mark. */
export function linksText(span) {
  const n = span.links.length;
  return `links to ${n} span${n === 1 ? "" : "s"} (span links point back to what caused this one)`;
}

/** "2 spans in other traces link here" for the row's ↪ mark. */
export function linkedFromText(linking) {
  const n = linking.length;
  const names = [...new Set(linking.map((l) => l.name))].join(", ");
  return `${n} span${n === 1 ? "" : "s"} in other traces link${n === 1 ? "s" : ""} here: ${names}`;
}

export function kvTable(pairs, { sort = true } = {}) {
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

export function copyButton(text, label = "copy") {
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

/** A span link of this span (backward): the trace and span it points to. */
function linkItem(link, page) {
  const same = link.traceId === page.model.traceId;
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
                page.select(link.spanId);
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
}

/** A span of another trace that links to this span (forward), from /api/traces/{id}/linked. */
function linkingItem(linking, page) {
  const error = linking.statusCode === 2;
  return h(
    "div",
    { class: `link-item linking${error ? " error" : ""}`, "data-trace-id": linking.traceID },
    h(
      "div",
      {},
      serviceChip(linking.service, page.colors),
      " ",
      h(
        "a",
        { class: "linking-name", href: `/trace/${linking.traceID}#span=${linking.spanID}` },
        linking.name,
      ),
      " ",
      h(
        "span",
        { class: `status-pill ${error ? "error" : "ok"}` },
        STATUS[linking.statusCode] || String(linking.statusCode),
      ),
    ),
    h(
      "div",
      { class: "muted" },
      `${fmtClock(linking.startTimeUnixNano, { withDate: true })} · ${fmtMs(Number(linking.durationNano))}`,
      linking.rootName && linking.rootName !== linking.name
        ? ` · in trace “${linking.rootName}”`
        : "",
    ),
    h("div", {}, "trace ", h("code", {}, linking.traceID)),
  );
}

/** The panel's content for `span` (page: {model, colors, critical, overhangs, linked, select}). */
export function renderDetails(span, page) {
  const model = page.model;
  const onPath = pathTime(page.critical.get(span.id));
  const parentCell = !span.parentId
    ? h("span", { class: "muted" }, "— (root span)")
    : span.parent
      ? h(
          "a",
          {
            href: `#span=${span.parentId}`,
            onclick: (e) => {
              e.preventDefault();
              page.select(span.parentId);
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
    ["Service", serviceChip(span.service, page.colors)],
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
      onPath > 0
        ? `${fmtMs(onPath)} of this span's time is on the critical path (${Math.round((100 * onPath) / Math.max(span.duration, 1))}%)`
        : "not on the critical path",
    ],
    ["Children", String(span.children.length)],
  ];
  if (span.httpStatus !== null) facts.splice(3, 0, ["HTTP status", String(span.httpStatus)]);
  if (span.fault)
    facts.push(["Injected fault", h("span", { class: "fault-text" }, faultText(span))]);
  const overhang = page.overhangs.get(span.id);
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
  const section = (title, count, attrs, ...body) =>
    h(
      "section",
      attrs,
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
  const linking = page.linked.get(span.id) || [];
  const logs = page.logs?.get(span.id) || [];

  return [
    h(
      "header",
      {},
      h("h2", {}, span.name, h("div", {}, serviceChip(span.service, page.colors))),
      h(
        "button",
        {
          type: "button",
          class: "small",
          title: "Close (Esc)",
          onclick: () => page.select(null),
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
    section("Span", null, {}, kvTable(facts, { sort: false })),
    section(
      "Attributes",
      span.attributes.length,
      {},
      span.attributes.length ? kvTable(span.attributes) : h("p", { class: "muted" }, "none"),
    ),
    section(
      "Events",
      span.events.length,
      {},
      events.length ? events : h("p", { class: "muted" }, "none"),
    ),
    section(
      "Logs",
      logs.length,
      { id: "span-logs" },
      logs.length ? spanLogs(logs, span) : h("p", { class: "muted" }, "none"),
    ),
    span.links.length
      ? section(
          "Links",
          span.links.length,
          { id: "links-out" },
          h("p", { class: "muted" }, "The spans this one links to (what caused it)."),
          span.links.map((link) => linkItem(link, page)),
        )
      : null,
    linking.length
      ? section(
          "Linked from",
          linking.length,
          { id: "links-in" },
          h(
            "p",
            { class: "muted" },
            "Spans in other traces that link to this one — e.g. the retries of a compensation " +
              "this span deferred.",
          ),
          linking.map((l) => linkingItem(l, page)),
        )
      : null,
    section(
      "Resource",
      span.resource.length,
      {},
      kvTable(span.resource),
      span.resourceSchemaUrl
        ? h("p", { class: "schema-url" }, "schema URL: ", h("code", {}, span.resourceSchemaUrl))
        : null,
    ),
    section(
      "Instrumentation scope",
      null,
      {},
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
