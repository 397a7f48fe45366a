// The trace page's state in its URL's fragment, so that every view deep-links:
// /trace/<id>#view=statistics&sort=selfTotal.desc, #span=<id> (the timeline, that span
// selected), #range=0.2500-0.5000 (the timeline zoomed), #view=flamegraph&focus=0.2.
// Pure (tests/js/location.test.mjs).

export const VIEWS = ["timeline", "statistics", "flamegraph"];

/** The fragment as {view, span, range, focus, sort, by, critical}; unknown keys are ignored. */
export function parseHash(hash) {
  const params = new URLSearchParams(String(hash || "").replace(/^#/, ""));
  const view = params.get("view");
  const span = params.get("span");
  return {
    view: VIEWS.includes(view) ? view : "timeline",
    span: span && /^[0-9a-fA-F]{1,32}$/.test(span) ? span.toLowerCase() : null,
    range: params.get("range"),
    focus: params.get("focus"),
    sort: params.get("sort"),
    by: params.get("by"),
    critical: params.get("critical") === "1",
  };
}

/** The fragment for a state: the timeline and empty values are left out ("" for none). */
export function formatHash(state) {
  const params = new URLSearchParams();
  if (state.view && state.view !== "timeline") params.set("view", state.view);
  for (const key of ["span", "range", "focus", "sort", "by"]) {
    if (state[key]) params.set(key, state[key]);
  }
  if (state.critical) params.set("critical", "1");
  const text = params.toString();
  return text ? `#${text}` : "";
}
