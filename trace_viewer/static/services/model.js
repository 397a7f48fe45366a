// The Services page's pure parts (no DOM, no fetch), unit-tested in Node
// (tests/js/services.test.mjs): the rows grouped by service, the chart scales and paths, and
// the URLs a row and an exemplar lead to.

/** Lookbacks offered, in ms. */
export const LOOKBACKS = [
  { value: "5m", label: "Last 5 minutes", ms: 5 * 60_000 },
  { value: "15m", label: "Last 15 minutes", ms: 15 * 60_000 },
  { value: "1h", label: "Last hour", ms: 3_600_000 },
  { value: "6h", label: "Last 6 hours", ms: 6 * 3_600_000 },
];

export function lookbackOf(value) {
  return LOOKBACKS.find((l) => l.value === value) || LOOKBACKS[0];
}

/** The API's rows grouped by service (services and their operations in name order). */
export function byService(rows) {
  const groups = new Map();
  for (const row of [...(rows || [])].sort(
    (a, b) => a.service.localeCompare(b.service) || a.operation.localeCompare(b.operation),
  )) {
    if (!groups.has(row.service)) groups.set(row.service, []);
    groups.get(row.service).push(row);
  }
  return [...groups].map(([service, operations]) => ({ service, operations }));
}

/** The trace list, searching this operation's traces over the same lookback. */
export function searchUrl(row, lookback) {
  const params = new URLSearchParams({
    service: row.service,
    operation: row.operation,
    lookback: lookbackOf(lookback).value,
  });
  return `/?${params}`;
}

/** An exemplar's trace, its span selected. */
export function exemplarUrl(exemplar) {
  return `/trace/${exemplar.trace_id}#span=${exemplar.span_id}`;
}

/**
 * A chart's scales: x over [endMs - lookbackMs, endMs], y from 0 to the largest value (or
 * 1 when all are 0 or missing), in a `width` × `height` box with `pad` px inside.
 */
export function scales(endMs, lookbackMs, values, { width, height, pad = 4 }) {
  const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  const top = Math.max(...finite, 0) || 1;
  const start = endMs - lookbackMs;
  return {
    top,
    x: (ms) => pad + ((ms - start) / lookbackMs) * (width - 2 * pad),
    y: (v) => height - pad - (v / top) * (height - 2 * pad),
  };
}

/**
 * An SVG path through the series' points (time_ms, value), a gap wherever a value is
 * missing (null: no request in that step); "" when there is nothing to draw.
 */
export function linePath(series, key, scale) {
  let path = "";
  let pen = false;
  for (const point of series || []) {
    const value = point[key];
    if (value === null || value === undefined || !Number.isFinite(value)) {
      pen = false;
      continue;
    }
    const x = scale.x(point.time_ms).toFixed(1);
    const y = scale.y(value).toFixed(1);
    path += `${pen ? "L" : "M"}${x},${y}`;
    pen = true;
  }
  return path;
}

/** A rate (per second) for a cell: "12.3/s", "0.05/s". */
export function fmtRate(rate) {
  if (!Number.isFinite(rate)) return "–";
  return `${rate >= 10 ? rate.toFixed(1) : rate >= 0.1 ? rate.toFixed(2) : rate.toFixed(3)}/s`;
}

/** An error rate (0-1) as a percentage: "0 %", "2.5 %". */
export function fmtPercent(ratio) {
  if (!Number.isFinite(ratio)) return "–";
  const pct = ratio * 100;
  return `${pct === 0 ? "0" : pct < 1 ? pct.toFixed(2) : pct.toFixed(1)} %`;
}

/** A bucket-estimated duration in ms: "≈12.5 ms"; "–" without one. */
export function fmtEstimate(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  const digits = ms >= 100 ? 0 : ms >= 10 ? 1 : 2;
  return `≈${ms.toFixed(digits)} ms`;
}
