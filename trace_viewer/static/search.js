// The trace list's pure parts (no DOM, no fetch), unit-tested in Node (tests/js/search.test.mjs):
// the tag text a user types, the URL query that carries a search, how a trace's outcome is
// classified, sorting, and the scales of the duration-over-time plot. list.js renders.

/** Jaeger UI's sort orders for search results (its SearchResults "Sort" menu), and ours. */
export const SORTS = [
  { value: "recent", label: "Most recent" },
  { value: "longest", label: "Longest first" },
  { value: "shortest", label: "Shortest first" },
  { value: "most-spans", label: "Most spans" },
  { value: "least-spans", label: "Least spans" },
  { value: "most-errors", label: "Most errors" },
];

/** Lookbacks as Jaeger UI offers them ("" is every stored trace; "custom" a start/end range). */
export const LOOKBACKS = [
  { value: "", label: "All stored" },
  { value: "5m", label: "Last 5 minutes" },
  { value: "15m", label: "Last 15 minutes" },
  { value: "1h", label: "Last hour" },
  { value: "6h", label: "Last 6 hours" },
  { value: "24h", label: "Last 24 hours" },
  { value: "2d", label: "Last 2 days" },
  { value: "7d", label: "Last 7 days" },
  { value: "custom", label: "Custom range" },
];

export const LIMITS = ["20", "50", "100", "200", "500", "1000"];
export const DEFAULT_LIMIT = "50";

// ---------------------------------------------------------------------------------------------
// Tags: "key=value" pairs as Jaeger UI's search form takes them (logfmt): separated by spaces,
// a value with spaces in double quotes ("a \"b\""), a bare key meaning "true".

/**
 * Parse the tag text; {tags: {key: "value"}, error: null}, or {tags: {}, error: "why"} when it
 * cannot be read.
 */
export function parseTags(text) {
  const tags = {};
  const source = String(text ?? "");
  let i = 0;
  const skipSpace = () => {
    while (i < source.length && /\s/.test(source[i])) i += 1;
  };
  const readQuoted = () => {
    let value = "";
    i += 1; // the opening quote
    while (i < source.length && source[i] !== '"') {
      if (source[i] === "\\" && i + 1 < source.length) i += 1;
      value += source[i];
      i += 1;
    }
    if (i >= source.length) return null; // unterminated
    i += 1; // the closing quote
    return value;
  };
  skipSpace();
  while (i < source.length) {
    let key = "";
    if (source[i] === '"') {
      key = readQuoted();
      if (key === null) return { tags: {}, error: "a quote is not closed" };
    } else {
      while (i < source.length && !/[\s=]/.test(source[i])) {
        key += source[i];
        i += 1;
      }
    }
    if (!key) return { tags: {}, error: `no key before "=" at ${i + 1}` };
    let value = "true";
    if (source[i] === "=") {
      i += 1;
      if (source[i] === '"') {
        value = readQuoted();
        if (value === null) return { tags: {}, error: `the value of ${key} has no closing quote` };
      } else {
        value = "";
        while (i < source.length && !/\s/.test(source[i])) {
          value += source[i];
          i += 1;
        }
      }
    }
    if (i < source.length && !/\s/.test(source[i])) {
      return { tags: {}, error: `a space is missing after ${key}=${value}` };
    }
    tags[key] = value;
    skipSpace();
  }
  return { tags, error: null };
}

/** Tags as the text parseTags reads back: key=value, quoted when needed. */
export function formatTags(tags) {
  const quote = (text) =>
    text === "" || /[\s"=]/.test(text) ? `"${text.replace(/["\\]/g, "\\$&")}"` : text;
  return Object.entries(tags || {})
    .map(([key, value]) => `${quote(key)}=${quote(String(value))}`)
    .join(" ");
}

/** A trace id as the API takes it (1-32 hex digits, zero-padded to 32), or null. */
export function normalizeTraceId(text) {
  const id = String(text ?? "").trim().toLowerCase();
  return /^[0-9a-f]{1,32}$/.test(id) ? id.padStart(32, "0") : null;
}

// ---------------------------------------------------------------------------------------------
// The search in the URL. The page's query string holds the API's parameters (so a URL can be
// shared, and /api/summaries gets the same ones), plus "sort", which only the page reads.

const API_PARAMS = [
  "service",
  "operation",
  "tags",
  "minDuration",
  "maxDuration",
  "lookback",
  "start",
  "end",
  "limit",
  "error",
];

/** The filters a URL query string holds (every value a string; tags an object). */
export function filtersFromQuery(query) {
  const params = new URLSearchParams(query);
  const filters = { tags: {}, sort: "recent", limit: DEFAULT_LIMIT };
  for (const name of API_PARAMS) {
    const value = params.get(name);
    if (value === null || value === "") continue;
    if (name === "tags") {
      try {
        const parsed = JSON.parse(value);
        if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
          filters.tags = Object.fromEntries(
            Object.entries(parsed).map(([key, v]) => [key, String(v)]),
          );
        }
      } catch {
        filters.tags = {}; // a hand-edited URL: drop what cannot be read
      }
    } else {
      filters[name] = value;
    }
  }
  const sort = params.get("sort");
  if (SORTS.some((s) => s.value === sort)) filters.sort = sort;
  if (filters.lookback !== "custom") {
    delete filters.start;
    delete filters.end;
  }
  return filters;
}

/** The URL query string of some filters, only what differs from the defaults, in a fixed order. */
export function queryFromFilters(filters, { forApi = false } = {}) {
  const params = new URLSearchParams();
  for (const name of API_PARAMS) {
    let value = filters[name];
    if (name === "tags") value = Object.keys(value || {}).length ? JSON.stringify(value) : "";
    if (name === "operation" && !filters.service) value = "";
    if (name === "limit" && value === DEFAULT_LIMIT && !forApi) value = "";
    if ((name === "start" || name === "end") && filters.lookback !== "custom") value = "";
    if (name === "lookback" && value === "custom" && forApi) value = "";
    if (name === "error" && value !== "true") value = "";
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  if (!forApi && filters.sort && filters.sort !== "recent") params.set("sort", filters.sort);
  return params.toString();
}

// ---------------------------------------------------------------------------------------------
// Outcomes: what the root's HTTP status and the order's status say happened.

/** Outcome kinds, worst last; each has its colour in viewer.css (.outcome-<kind>). */
export const OUTCOMES = {
  ok: "succeeded",
  rejected: "rejected (out of stock)",
  declined: "payment declined",
  invalid: "refused (client error)",
  failed: "failed (server error)",
  unknown: "no HTTP status",
};

/** {kind, label} of a summary row: "201 confirmed" ok, "402 payment_failed" declined, … */
export function classifyOutcome(row) {
  const status = Number.isInteger(row?.rootStatusCode) ? row.rootStatusCode : null;
  const order = row?.orderStatus || "";
  const label = [status, order].filter((part) => part !== null && part !== "").join(" ");
  let kind;
  if ((status !== null && status >= 500) || order === "failed") kind = "failed";
  else if (status === 402 || order === "payment_failed") kind = "declined";
  else if (status === 409 || order === "rejected") kind = "rejected";
  else if (status !== null && status >= 400) kind = "invalid";
  else if (status !== null) kind = "ok";
  else kind = (Number(row?.errorCount) || 0) > 0 ? "failed" : "unknown";
  return { kind, label: label || "—" };
}

// ---------------------------------------------------------------------------------------------
// Sorting (a copy; ties newest first, then by id, so the order is stable across refreshes).

const startOf = (row) => BigInt(String(row.startTimeUnixNano ?? "0").split(".")[0] || "0");
const durationOf = (row) => Number(row.durationNano) || 0;

export function sortTraces(rows, order = "recent") {
  const newestFirst = (a, b) => {
    const delta = startOf(b) - startOf(a);
    if (delta !== 0n) return delta > 0n ? 1 : -1;
    return String(a.traceID).localeCompare(String(b.traceID));
  };
  const by = {
    recent: () => 0,
    longest: (a, b) => durationOf(b) - durationOf(a),
    shortest: (a, b) => durationOf(a) - durationOf(b),
    "most-spans": (a, b) => (b.spanCount || 0) - (a.spanCount || 0),
    "least-spans": (a, b) => (a.spanCount || 0) - (b.spanCount || 0),
    "most-errors": (a, b) => (b.errorCount || 0) - (a.errorCount || 0),
  }[order] || (() => 0);
  return [...rows].sort((a, b) => by(a, b) || newestFirst(a, b));
}

// ---------------------------------------------------------------------------------------------
// Comparing two traces of the list, as Jaeger UI's search results do (a checkbox per trace,
// then "Compare Traces"): the one that started first is A and the later one B, so that the
// comparison reads B − A as what changed since (an order before a change against one after).

/** {a, b}: the trace ids of two ticked rows, the earlier-started first; null unless two. */
export function comparePair(rows) {
  const ids = new Set((rows || []).map((row) => row?.traceID));
  if (rows?.length !== 2 || ids.size !== 2) return null;
  const [a, b] = [...rows].sort((x, y) => {
    const delta = startOf(x) - startOf(y);
    if (delta !== 0n) return delta > 0n ? 1 : -1;
    return String(x.traceID).localeCompare(String(y.traceID));
  });
  return { a: a.traceID, b: b.traceID };
}

// ---------------------------------------------------------------------------------------------
// The duration-over-time plot: start time across, duration up, one dot per trace.

/** A linear map from [d0, d1] to [r0, r1] (a flat domain maps to the middle of the range). */
export function linearScale([d0, d1], [r0, r1]) {
  const span = d1 - d0;
  return (value) => (span === 0 ? (r0 + r1) / 2 : r0 + ((value - d0) / span) * (r1 - r0));
}

const TIME_STEPS_MS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000,
  300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000,
  86_400_000, 172_800_000, 604_800_000,
];

/** About `count` round wall-clock ticks (ms since the epoch) within [fromMs, toMs]. */
export function timeTicks(fromMs, toMs, count = 6) {
  if (!(toMs > fromMs)) return { step: 0, ticks: [fromMs] };
  const rough = (toMs - fromMs) / count;
  const step = TIME_STEPS_MS.find((s) => s >= rough) ?? TIME_STEPS_MS.at(-1);
  const ticks = [];
  for (let t = Math.ceil(fromMs / step) * step; t <= toMs; t += step) ticks.push(t);
  return { step, ticks };
}

/** About `count` round durations (ns) from 0 to at least `maxNs`: 1, 2, 5 × 10^n. */
export function durationTicks(maxNs, count = 4) {
  if (!(maxNs > 0)) return { step: 1, ticks: [0], top: 1 };
  const rough = maxNs / count;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough);
  const top = Math.ceil(maxNs / step) * step;
  const ticks = [];
  for (let t = 0; t <= top + step * 1e-9; t += step) ticks.push(t);
  return { step, ticks, top };
}

/**
 * The plot's geometry for some summary rows inside a `width` × `height` box with `margin`s:
 * a dot per trace (x from its start, y from its duration, its outcome kind) and the axes' ticks.
 */
export function scatterLayout(rows, { width, height, margin }) {
  const left = margin.left;
  const right = width - margin.right;
  const top = margin.top;
  const bottom = height - margin.bottom;
  const startsMs = rows.map((row) => Number(startOf(row) / 1_000_000n));
  const fromMs = Math.min(...startsMs);
  const toMs = Math.max(...startsMs);
  const pad = toMs > fromMs ? (toMs - fromMs) * 0.02 : 1000; // dots off the plot's edges
  const domain = rows.length ? [fromMs - pad, toMs + pad] : [0, 1];
  const x = linearScale(domain, [left, right]);
  const yAxis = durationTicks(Math.max(0, ...rows.map(durationOf)));
  const y = linearScale([0, yAxis.top], [bottom, top]);
  const time = timeTicks(domain[0], domain[1]);
  return {
    points: rows.map((row, i) => ({
      traceID: row.traceID,
      x: x(startsMs[i]),
      y: y(durationOf(row)),
      kind: classifyOutcome(row).kind,
      row,
    })),
    xTicks: time.ticks.map((ms) => ({ x: x(ms), ms, stepMs: time.step })),
    yTicks: yAxis.ticks.map((ns) => ({ y: y(ns), ns, stepNs: yAxis.step })),
  };
}
