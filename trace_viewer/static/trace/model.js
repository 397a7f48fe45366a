// The trace model: pure functions from an OTLP JSON trace to what the views draw (no DOM, no
// fetch), so they are unit-tested apart from the rendering (tests/js/), as Jaeger UI keeps its
// transforms apart from its components. Importable on its own, in a page or in Node:
//
//   import { buildModel, overhangs, sanitizedBounds } from "/static/trace/model.js";
//   const model = buildModel(traceId, body.result.resourceSpans); // GET /api/v3/traces/{id}
//
// The other pure transforms build on it: critical-path/compute.js, statistics/compute.js,
// flamegraph/layout.js, minimap/range.js, timeline/rows.js.
import { attrList, toBigInt } from "../common.js";

export const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];
export const STATUS = ["UNSET", "OK", "ERROR"];
export const SPAN_KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };
/** The attribute ordersim's services put on a span an injected fault touched (common/faults.py). */
export const FAULT_ATTRIBUTE = "ordersim.fault.injected";
/** The HTTP status of a SERVER or CLIENT span: the stable semantic convention, then the old one. */
export const HTTP_STATUS_ATTRIBUTES = ["http.response.status_code", "http.status_code"];

/** The HTTP status code of a SERVER or CLIENT span (a Number), or null. */
export function httpStatus(kind, attributes) {
  if (kind !== SPAN_KIND.server && kind !== SPAN_KIND.client) return null;
  for (const name of HTTP_STATUS_ATTRIBUTES) {
    const found = attributes.find(([key]) => key === name);
    const code = found ? Number(found[1]) : NaN;
    if (Number.isInteger(code) && code >= 100 && code <= 999) return code;
  }
  return null;
}

function enumIndex(value, names, prefix) {
  if (typeof value === "number") return value;
  if (typeof value === "string") {
    if (/^\d+$/.test(value)) return Number(value);
    const index = names.findIndex((n) => `${prefix}${n}`.toUpperCase() === value.toUpperCase());
    return index < 0 ? 0 : index;
  }
  return 0;
}

/**
 * Spans of an OTLP JSON trace, linked into a tree. Times are kept as ns relative to the
 * trace's first start (Numbers: exact for traces up to ~104 days long), from BigInt epochs.
 */
/**
 * A resource's service.name, or the placeholder Jaeger writes (and the store, the trace list
 * and ordersim/waterfall.py with it: trace_viewer/jaeger.py's service_name_json) when it is
 * missing, empty or not a string.
 */
export function serviceName(attributes) {
  const found = (attributes || []).find((kv) => kv?.key === "service.name");
  if (!found) return "missing-service-name";
  if (found.value?.stringValue === undefined) return "service-name-wrong-type";
  return String(found.value.stringValue) || "empty-service-name";
}

export function buildModel(traceId, resourceSpans) {
  const spans = [];
  const byId = new Map();
  const warnings = [];
  let duplicates = 0;
  for (const rs of resourceSpans || []) {
    const resource = attrList(rs.resource?.attributes);
    const resourceSchemaUrl = rs.schemaUrl || "";
    const service = serviceName(rs.resource?.attributes);
    for (const ss of rs.scopeSpans || rs.instrumentationLibrarySpans || []) {
      const scope = ss.scope || ss.instrumentationLibrary || {};
      for (const raw of ss.spans || []) {
        const id = String(raw.spanId || "").toLowerCase();
        if (!id || byId.has(id)) {
          duplicates += 1;
          continue;
        }
        const startAbs = toBigInt(raw.startTimeUnixNano);
        let endAbs = toBigInt(raw.endTimeUnixNano);
        if (endAbs < startAbs) endAbs = startAbs;
        const span = {
          id,
          traceId: String(raw.traceId || traceId).toLowerCase(),
          parentId: String(raw.parentSpanId || "").toLowerCase() || null,
          name: raw.name || "(unnamed)",
          kind: enumIndex(raw.kind, KINDS, "SPAN_KIND_"),
          service,
          resource,
          resourceSchemaUrl,
          scope: {
            name: scope.name || "",
            version: scope.version || "",
            schemaUrl: ss.schemaUrl || "",
          },
          attributes: attrList(raw.attributes),
          rawEvents: raw.events || [],
          links: (raw.links || []).map((link) => ({
            traceId: String(link.traceId || "").toLowerCase(),
            spanId: String(link.spanId || "").toLowerCase(),
            attributes: attrList(link.attributes),
          })),
          status: {
            code: enumIndex(raw.status?.code, STATUS, "STATUS_CODE_"),
            message: raw.status?.message || "",
          },
          startAbs,
          endAbs,
          children: [],
          parent: null,
          orphan: false,
          depth: 0,
          descendants: 0,
          descendantErrors: 0,
          faultCaused: false,
        };
        span.error = span.status.code === 2;
        span.httpStatus = httpStatus(span.kind, span.attributes);
        span.fault = span.attributes.some(
          ([key, value]) => key === FAULT_ATTRIBUTE && value === true,
        );
        spans.push(span);
        byId.set(id, span);
      }
    }
  }
  if (duplicates)
    warnings.push(`${duplicates} span(s) with a missing or repeated span id were skipped.`);
  if (!spans.length) return null;

  const t0 = spans.reduce((min, s) => (s.startAbs < min ? s.startAbs : min), spans[0].startAbs);
  const tEnd = spans.reduce((max, s) => (s.endAbs > max ? s.endAbs : max), spans[0].endAbs);
  for (const span of spans) {
    span.start = Number(span.startAbs - t0);
    span.end = Number(span.endAbs - t0);
    span.duration = span.end - span.start;
    span.events = span.rawEvents
      .map((event) => {
        const time = Number(toBigInt(event.timeUnixNano) - t0);
        return {
          name: event.name || "(event)",
          time,
          offset: time - span.start,
          attributes: attrList(event.attributes),
        };
      })
      .sort((a, b) => a.time - b.time);
  }

  const topLevel = [];
  for (const span of spans) {
    const parent = span.parentId && span.parentId !== span.id ? byId.get(span.parentId) : undefined;
    if (parent) {
      span.parent = parent;
      parent.children.push(span);
    } else {
      span.orphan = Boolean(span.parentId);
      topLevel.push(span);
    }
  }
  const byStart = (a, b) => a.start - b.start || b.end - a.end || a.name.localeCompare(b.name);

  // Depth-first order; spans caught in a parent cycle are unreachable from the top: lift them.
  const order = [];
  const visited = new Set();
  const walk = (top) => {
    const stack = [[top, 0]];
    while (stack.length) {
      const [span, depth] = stack.pop();
      if (visited.has(span.id)) continue;
      visited.add(span.id);
      span.depth = depth;
      order.push(span);
      span.children.sort(byStart);
      for (let i = span.children.length - 1; i >= 0; i -= 1)
        stack.push([span.children[i], depth + 1]);
    }
  };
  topLevel.sort(byStart).forEach(walk);
  const cyclic = spans.filter((s) => !visited.has(s.id));
  for (const span of cyclic) {
    if (visited.has(span.id)) continue;
    if (span.parent) span.parent.children = span.parent.children.filter((c) => c !== span);
    span.parent = null;
    span.orphan = true;
    topLevel.push(span);
    walk(span);
  }
  if (cyclic.length)
    warnings.push(`${cyclic.length} span(s) form a parent cycle; shown at top level.`);
  for (let i = order.length - 1; i >= 0; i -= 1) {
    const span = order[i];
    span.descendants = span.children.reduce((n, c) => n + 1 + c.descendants, 0);
    span.descendantErrors = span.children.reduce(
      (n, c) => n + (c.error ? 1 : 0) + c.descendantErrors,
      0,
    );
  }
  // Touched by an injected fault, or an ancestor of a span one touched: an ERROR there is the
  // fault's consequence (the CLIENT span, charge_payment, place_order, POST /orders failing
  // because payment's POST /charges was made to fail), not a real error. The store counts the
  // trace list's errors by the same rule (trace_viewer/store.py, _COUNT_REAL_ERRORS).
  for (const span of spans) {
    if (!span.fault) continue;
    for (let up = span; up && !up.faultCaused; up = up.parent) up.faultCaused = true;
  }
  const orphans = topLevel.filter((s) => s.orphan);
  if (orphans.length) {
    warnings.push(
      `${orphans.length} span(s) reference a parent that is not in this trace (yet) and are shown ` +
        "at top level, marked “orphan”.",
    );
  }

  // The root: a span without a parent (the earliest, longest one if several), else the first.
  const trueRoots = topLevel.filter((s) => !s.orphan);
  const root = [...(trueRoots.length ? trueRoots : topLevel)].sort(
    (a, b) => a.start - b.start || b.duration - a.duration,
  )[0];
  if (trueRoots.length > 1)
    warnings.push(
      `${trueRoots.length} spans have no parent; the critical path starts at the earliest.`,
    );

  const services = [];
  for (const span of order) if (!services.includes(span.service)) services.push(span.service);
  const serviceCounts = new Map(services.map((s) => [s, 0]));
  for (const span of spans) serviceCounts.set(span.service, serviceCounts.get(span.service) + 1);

  return {
    traceId,
    spans,
    byId,
    order,
    topLevel,
    root,
    services,
    serviceCounts,
    startAbs: t0,
    duration: Number(tEnd - t0),
    /** Spans with status ERROR, whatever the cause. */
    errorCount: spans.filter((s) => s.error).length,
    /** ERROR spans no injected fault caused (neither touched by one nor its ancestor). */
    realErrorCount: spans.filter((s) => s.error && !s.faultCaused).length,
    /** Spans an injected fault touched (the trace list's ⚡ count). */
    faultCount: spans.filter((s) => s.fault).length,
    maxDepth: Math.max(...order.map((s) => s.depth)) + 1,
    warnings,
  };
}

/**
 * Each span's time range clipped to its parent's (itself clipped), as Jaeger UI's
 * `sanitizeOverFlowingChildren` does before it computes the critical path: a child that ends
 * after its parent ends (or starts before it starts) is cut to the parent's range; a child
 * entirely outside it (starting at or after the parent's end, or ending at or before its
 * start), and every descendant of such a child, is dropped. Skew is settled here, in the model,
 * not hidden in the drawing; `overhangs` says what was cut.
 *
 * Returns Map<spanId, {start, end}> (trace-relative ns) of the spans kept; top-level spans keep
 * their own range.
 */
export function sanitizedBounds(model) {
  const bounds = new Map();
  const visit = (span, start, end) => {
    bounds.set(span.id, { start, end });
    for (const child of span.children) {
      const outside = child.start >= end || child.end <= start;
      // A zero-length parent keeps its zero-length children at the same instant.
      const instant = start === end && child.start === start && child.end === end;
      if (outside && !instant) continue;
      visit(child, Math.max(child.start, start), Math.min(child.end, end));
    }
  };
  for (const top of model.topLevel) visit(top, top.start, top.end);
  return bounds;
}

/**
 * Spans whose time range is not inside their parent's: a child that ends after its parent ends
 * (or starts before it starts). On one machine it is scheduling — the parent's end was recorded
 * before the child's, e.g. a SERVER span ending after the CLIENT span that called it once the
 * response's last byte was sent, or a child task its parent did not wait for; across machines,
 * clock skew as well. Jaeger marks such spans (its clock-skew warnings) instead of letting a bar
 * stick out of its parent silently; so does this viewer.
 *
 * Returns Map<spanId, {before, after, parentId, calledBy}>: ns before the parent's start and
 * after its end; `calledBy` is true for a SERVER span under the CLIENT span that called it.
 */
export function overhangs(model) {
  const found = new Map();
  for (const span of model.spans) {
    const parent = span.parent;
    if (!parent) continue;
    const before = Math.max(0, parent.start - span.start);
    const after = Math.max(0, span.end - parent.end);
    if (before === 0 && after === 0) continue;
    found.set(span.id, {
      before,
      after,
      parentId: parent.id,
      calledBy: span.kind === SPAN_KIND.server && parent.kind === SPAN_KIND.client,
    });
  }
  return found;
}
