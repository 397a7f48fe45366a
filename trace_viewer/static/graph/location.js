// The service graph page's URL and the links out of it. Pure (tests/js/graph-location.test.mjs).
//
//   /dependencies                      the last hour up to now
//   /dependencies?lookback=15m         the last 15 minutes
//   /dependencies?lookback=6h&endTs=…  the 6 hours before endTs (ms since the epoch), as
//                                      GET /api/dependencies takes it: a past incident's graph
//
// The links lead to the trace list (GET /), which reads `service`, `error=true` and the time
// window (`lookback`, or `lookback=custom` with `start` and `end` in µs) from its query string,
// as /api/summaries does: the traces behind the graph's window.

/** The lookbacks offered, keyed as Jaeger UI keys its search lookbacks; `ms` for the API. */
export const LOOKBACKS = [
  { key: "5m", label: "Last 5 minutes", ms: 5 * 60e3 },
  { key: "15m", label: "Last 15 minutes", ms: 15 * 60e3 },
  { key: "1h", label: "Last hour", ms: 3600e3 },
  { key: "6h", label: "Last 6 hours", ms: 6 * 3600e3 },
  { key: "24h", label: "Last 24 hours", ms: 24 * 3600e3 },
  { key: "2d", label: "Last 2 days", ms: 2 * 24 * 3600e3 },
  { key: "7d", label: "Last 7 days", ms: 7 * 24 * 3600e3 },
];
export const DEFAULT_LOOKBACK = "1h";

/**
 * The page's state from its query string: {lookback (a LOOKBACKS entry), endTs (ms, or null
 * for now), problems: what was not understood, as text to show}. An unknown lookback or a
 * malformed endTs falls back to the default, and says so.
 */
export function parsePageQuery(search) {
  const params = new URLSearchParams(String(search || ""));
  const problems = [];
  const key = params.get("lookback");
  const fallback = LOOKBACKS.find((l) => l.key === DEFAULT_LOOKBACK);
  let lookback = LOOKBACKS.find((l) => l.key === key);
  if (key && !lookback) {
    const keys = LOOKBACKS.map((l) => l.key).join(", ");
    problems.push(
      `lookback "${key}" is none of ${keys}: showing the ${fallback.label.toLowerCase()}`,
    );
  }
  lookback = lookback || fallback;
  const endText = params.get("endTs");
  let endTs = null;
  if (endText) {
    if (/^\d{1,15}$/.test(endText)) endTs = Number(endText);
    else problems.push(`endTs "${endText}" is not a time in ms since the epoch: showing until now`);
  }
  return { lookback, endTs, problems };
}

/** The page's query string for a state ("" for the defaults). */
export function formatPageQuery({ lookback, endTs = null }) {
  const params = new URLSearchParams();
  const key = typeof lookback === "string" ? lookback : lookback?.key;
  if (key && key !== DEFAULT_LOOKBACK) params.set("lookback", key);
  if (endTs !== null && endTs !== undefined) params.set("endTs", String(endTs));
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** The API request for a state: /api/dependencies?endTs=…&lookback=… (both in ms). */
export function dependenciesUrl({ lookback, endTs }, now) {
  const end = endTs ?? now;
  return `/api/dependencies?endTs=${Math.floor(end)}&lookback=${Math.floor(lookback.ms)}`;
}

/**
 * The trace list filtered to a service's traces, or those with errors, in the graph's window
 * (a page state: up to now, the list's lookback of the same key; up to endTs, that range).
 */
export function searchUrl(service, { errors = false, range = null } = {}) {
  const params = new URLSearchParams({ service });
  if (errors) params.set("error", "true");
  if (range?.lookback) {
    if (range.endTs === null || range.endTs === undefined) {
      params.set("lookback", range.lookback.key);
    } else {
      params.set("lookback", "custom");
      params.set("start", String(Math.floor(range.endTs - range.lookback.ms) * 1000));
      params.set("end", String(Math.floor(range.endTs) * 1000));
    }
  }
  return `/?${params}`;
}

/**
 * Where a click leads, in the window of the page state `range` (optional). A service: its
 * traces. An edge: the traces of its callee (each of them made that call), and from its
 * failures those of them with errors. A callee that never answered has no traces of its own
 * (no spans): its node leads nowhere, and its edges to the caller's traces with errors, where
 * the failed calls are (the caller's CLIENT spans).
 */
export function nodeHref(node, range = null) {
  return node.kind === "unanswered" ? null : searchUrl(node.name, { range });
}

/** {calls, errors}: the edge's links (errors null when none failed or the count is unknown). */
export function edgeHrefs(edge, childKind, range = null) {
  if (childKind === "unanswered") {
    const href = searchUrl(edge.parent, { errors: true, range });
    return { calls: href, errors: edge.errors > 0 ? href : null };
  }
  return {
    calls: searchUrl(edge.child, { range }),
    errors: edge.errors > 0 ? searchUrl(edge.child, { errors: true, range }) : null,
  };
}
