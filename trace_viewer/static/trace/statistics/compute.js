// Trace statistics, as Jaeger UI's TraceStatistics view computes them (`tableValues`): per
// service and operation, the count, total, min/avg/max and self time. Pure
// (tests/js/statistics.test.mjs); statistics/render.js draws the table.
import { pathTime } from "../critical-path/compute.js";

/** The time the union of [start, end] intervals covers (overlaps counted once). */
export function coveredTime(intervals) {
  const sorted = intervals.filter((i) => i.end > i.start).sort((a, b) => a.start - b.start);
  let total = 0;
  let reach = -Infinity;
  for (const { start, end } of sorted) {
    if (end <= reach) continue;
    total += end - Math.max(start, reach);
    reach = end;
  }
  return total;
}

/**
 * A span's self time: its duration less the time its children cover. Children are clipped to
 * the span's own range first (a child that outlives its parent covers only up to the parent's
 * end, as Jaeger's `sanitizeOverFlowingChildren` clips it), and overlapping children count
 * once — so self time is never negative, and concurrent children do not count twice.
 */
export function selfTime(span) {
  const covered = coveredTime(
    span.children.map((c) => ({
      start: Math.max(c.start, span.start),
      end: Math.min(c.end, span.end),
    })),
  );
  return span.duration - covered;
}

/** The table's columns: key, heading, and whether it holds a duration in ns. */
export const COLUMNS = [
  { key: "service", label: "Service", numeric: false },
  { key: "operation", label: "Operation", numeric: false },
  { key: "count", label: "Count", numeric: true },
  { key: "errors", label: "Errors", numeric: true },
  { key: "total", label: "Total", numeric: true, duration: true },
  { key: "avg", label: "Avg", numeric: true, duration: true },
  { key: "min", label: "Min", numeric: true, duration: true },
  { key: "max", label: "Max", numeric: true, duration: true },
  { key: "selfTotal", label: "Self total", numeric: true, duration: true },
  { key: "selfAvg", label: "Self avg", numeric: true, duration: true },
  { key: "selfMin", label: "Self min", numeric: true, duration: true },
  { key: "selfMax", label: "Self max", numeric: true, duration: true },
  { key: "selfPercent", label: "Self % of trace", numeric: true },
  { key: "critical", label: "On critical path", numeric: true, duration: true },
];

/**
 * One row per service and operation (`groupBy: "operation"`) or per service
 * (`groupBy: "service"`, `operation` null): count, errors, total/avg/min/max duration and self
 * time (ns), self time as a percentage of the trace's duration, time on the critical path
 * (given `critical`, the Map criticalPath returns), the spans of the row and its slowest span.
 * Rows come in the order their first span appears in the trace.
 */
export function traceStatistics(model, { groupBy = "operation", critical = null } = {}) {
  const rows = new Map();
  for (const span of model.order) {
    const key = groupBy === "service" ? span.service : `${span.service}\u0000${span.name}`;
    let row = rows.get(key);
    if (!row) {
      row = {
        key,
        service: span.service,
        operation: groupBy === "service" ? null : span.name,
        count: 0,
        errors: 0,
        total: 0,
        min: Infinity,
        max: -Infinity,
        selfTotal: 0,
        selfMin: Infinity,
        selfMax: -Infinity,
        critical: 0,
        spanIds: [],
        slowest: null,
      };
      rows.set(key, row);
    }
    const self = selfTime(span);
    row.count += 1;
    row.errors += span.error ? 1 : 0;
    row.total += span.duration;
    row.min = Math.min(row.min, span.duration);
    if (span.duration > row.max) {
      row.max = span.duration;
      row.slowest = span.id;
    }
    row.selfTotal += self;
    row.selfMin = Math.min(row.selfMin, self);
    row.selfMax = Math.max(row.selfMax, self);
    row.critical += critical ? pathTime(critical.get(span.id)) : 0;
    row.spanIds.push(span.id);
  }
  return [...rows.values()].map((row) => ({
    ...row,
    avg: row.total / row.count,
    selfAvg: row.selfTotal / row.count,
    selfPercent: model.duration > 0 ? (100 * row.selfTotal) / model.duration : 0,
  }));
}

/**
 * Rows sorted by a column ("asc" or "desc"); ties keep the service, then operation, order.
 * Text columns sort by locale, numbers numerically.
 */
export function sortStatistics(rows, column, direction = "desc") {
  const sign = direction === "asc" ? 1 : -1;
  const byName = (a, b) =>
    a.service.localeCompare(b.service) || (a.operation ?? "").localeCompare(b.operation ?? "");
  return [...rows].sort((a, b) => {
    const x = a[column];
    const y = b[column];
    const primary =
      typeof x === "number" && typeof y === "number"
        ? x - y
        : String(x ?? "").localeCompare(String(y ?? ""));
    return sign * primary || byName(a, b);
  });
}
