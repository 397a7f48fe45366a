// Choosing a trace to compare with (rendering): the trace page's "Compare…" action, and the
// suggestions both it and the comparison page offer — recent traces with the same root, from
// GET /api/summaries. The ids typed or pasted are read by compare/location.js.
import { fmtAgo, fmtMs, getJSON, h } from "../common.js";
import { compareUrl, traceIdFrom } from "./location.js";

const SUGGESTIONS = 20;

/**
 * A <datalist> of recent traces with this root (service and operation), other than `exclude`,
 * filled in the background; empty when the viewer cannot say (a real Jaeger has no summaries).
 */
export function suggestions(id, root, exclude = []) {
  const list = h("datalist", { id });
  if (!root) return list;
  const params = new URLSearchParams({
    service: root.service,
    operation: root.name,
    limit: String(SUGGESTIONS),
  });
  getJSON(`/api/summaries?${params}`).then(
    (body) => {
      const rows = (Array.isArray(body?.data) ? body.data : []).filter(
        (row) =>
          typeof row?.traceID === "string" &&
          !exclude.includes(row.traceID) &&
          row.rootName === root.name &&
          row.rootService === root.service,
      );
      list.replaceChildren(
        ...rows.map((row) =>
          h("option", {
            value: row.traceID,
            label: [
              row.rootName,
              fmtMs(row.durationNano),
              fmtAgo(row.startTimeUnixNano),
              row.errorCount ? `${row.errorCount} error(s)` : "",
            ]
              .filter(Boolean)
              .join(" · "),
          }),
        ),
      );
    },
    () => null,
  );
  return list;
}

/**
 * The trace page's "⇄ Compare…" action: a field for the other trace's id (or its URL, pasted),
 * with recent traces of the same root as suggestions; it opens /trace/<this>...<other>.
 */
export function compareAction(model) {
  const error = h("span", { class: "form-error", id: "compare-error", role: "alert" });
  const input = h("input", {
    type: "search",
    id: "compare-with",
    name: "other",
    list: "compare-suggestions",
    placeholder: "another trace id or URL",
    "aria-label": "trace to compare with",
    autocomplete: "off",
    oninput: () => (error.textContent = ""),
  });
  let suggested = null;
  const form = h(
    "form",
    {
      class: "compare-form",
      id: "compare-form",
      onsubmit: (event) => {
        event.preventDefault();
        const other = traceIdFrom(input.value);
        if (!other) {
          error.textContent = input.value.trim()
            ? "Not a trace id (32 hex digits) or a trace URL"
            : "Enter a trace id";
          input.focus();
          return;
        }
        location.assign(compareUrl(model.traceId, other));
      },
    },
    input,
    h("button", { type: "submit", class: "primary", id: "compare-go" }, "Compare"),
    error,
  );
  return h(
    "details",
    {
      class: "compare-action",
      id: "compare-action",
      ontoggle: (event) => {
        if (!event.target.open) return;
        if (!suggested) {
          suggested = suggestions("compare-suggestions", model.root, [model.traceId]);
          form.append(suggested);
        }
        input.focus();
      },
    },
    h(
      "summary",
      {
        class: "button",
        title: "Compare this trace with another: spans only in one, and the time each path took",
      },
      "⇄ Compare…",
    ),
    form,
  );
}
