// The trace's logs where people look: a timeline under the waterfall (every record of the
// trace in time order, each marked at its moment on the trace's time axis, its span one click
// away) and, in a span's details, the records written inside that span.
import { fmtMs, h, serviceChip } from "../../common.js";
import { kvTable } from "../details.js";

function severityBadge(log) {
  return h("span", { class: ["log-severity", `sev-${log.severity}`] }, log.severityText);
}

function attributesOf(log) {
  return log.attributes.length
    ? h("details", { class: "log-attributes" }, h("summary", {}, "attributes"), kvTable(log.attributes))
    : null;
}

/** The records of one span, for its details panel. */
export function spanLogs(logs, span) {
  return logs.map((log) =>
    h(
      "div",
      { class: "log-entry", "data-severity": log.severity },
      h(
        "div",
        { class: "log-head" },
        severityBadge(log),
        h("span", { class: "log-time" }, `+${fmtMs(log.offset - span.start)} from span start`),
      ),
      h("div", { class: "log-body" }, log.body),
      attributesOf(log),
    ),
  );
}

/** The log timeline of the whole trace (hidden when it has no logs). */
export function logTimeline(page, logs) {
  const model = page.model;
  const duration = Math.max(model.duration, 1);
  const rows = logs.map((log) => {
    const at = Math.min(100, Math.max(0, (100 * log.offset) / duration));
    return h(
      "li",
      { class: "log-row", "data-severity": log.severity, "data-span-id": log.spanId },
      h(
        "span",
        { class: "log-track", "aria-hidden": "true" },
        h("span", { class: ["log-mark", `sev-${log.severity}`], style: { left: `${at}%` } }),
      ),
      h("span", { class: "log-time" }, `+${fmtMs(log.offset)}`),
      severityBadge(log),
      serviceChip(log.service, page.colors),
      h("span", { class: "log-body" }, log.body),
      log.span
        ? h(
            "a",
            {
              class: "log-span",
              href: `#span=${log.span.id}`,
              title: "select the span this record was written in",
              onclick: (e) => {
                e.preventDefault();
                page.select(log.span.id);
              },
            },
            log.span.name,
          )
        : h("span", { class: "muted" }, log.spanId ? "span not in this trace" : "no span"),
    );
  });
  return h(
    "section",
    { class: "log-timeline", id: "log-timeline", hidden: !logs.length },
    h(
      "h3",
      {},
      "Logs",
      h("span", { class: "count" }, ` (${logs.length})`),
      h("span", { class: "muted" }, " — written inside this trace's spans, in time order"),
    ),
    h("ol", {}, rows),
  );
}
