// The trace model: pure functions from an OTLP JSON trace to what the views draw (no DOM, no
// fetch), so they are unit-tested apart from the rendering (tests/js/model.test.mjs), as Jaeger
// UI keeps its transforms apart from its components.
import { attrList, toBigInt } from "./common.js";

export const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];
export const STATUS = ["UNSET", "OK", "ERROR"];
export const SPAN_KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };
/** The attribute ordersim's services put on a span an injected fault touched (common/faults.py). */
export const FAULT_ATTRIBUTE = "ordersim.fault.injected";

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
export function buildModel(traceId, resourceSpans) {
  const spans = [];
  const byId = new Map();
  const warnings = [];
  let duplicates = 0;
  for (const rs of resourceSpans || []) {
    const resource = attrList(rs.resource?.attributes);
    const resourceSchemaUrl = rs.schemaUrl || "";
    const serviceAttr = resource.find(([key]) => key === "service.name");
    const service = serviceAttr ? String(serviceAttr[1]) : "unknown_service";
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
        };
        span.error = span.status.code === 2;
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
    errorCount: spans.filter((s) => s.error).length,
    faultCount: spans.filter((s) => s.fault).length,
    maxDepth: Math.max(...order.map((s) => s.depth)) + 1,
    warnings,
  };
}

/**
 * The critical path, as Jaeger UI computes it: start at the root's end; the child that finishes
 * last before the current cut-off is on the path — the gap between its end and the cut-off is
 * the parent's own time on the path — then descend into that child. A span with no (more)
 * children finishing before the cut-off is on the path from its start to the cut-off; the
 * cut-off moves to its start and we return to its parent. Children are first clipped to their
 * parent's time range (clock skew), and children entirely outside it are ignored.
 *
 * Returns Map<spanId, [{start, end}]> of the path's segments (trace-relative ns).
 */
export function criticalPath(model) {
  const bounds = new Map(); // span -> {start, end, kids sorted by end, latest first}
  const clip = (span, start, end) => {
    const kids = [];
    for (const child of span.children) {
      if (child.end < start || child.start > end) continue; // entirely outside the parent
      kids.push(child);
      clip(child, Math.max(child.start, start), Math.min(child.end, end));
    }
    kids.sort((a, b) => bounds.get(b).end - bounds.get(a).end);
    bounds.set(span, { start, end, kids });
  };
  clip(model.root, model.root.start, model.root.end);

  const segments = new Map();
  const push = (span, start, end) => {
    if (end <= start) return;
    if (!segments.has(span.id)) segments.set(span.id, []);
    segments.get(span.id).push({ start, end });
  };
  let span = model.root;
  let cutoff = null;
  for (let guard = 0; guard < 4 * model.spans.length + 8; guard += 1) {
    const b = bounds.get(span);
    const sectionEnd = cutoff === null ? b.end : cutoff;
    const last = cutoff === null ? b.kids[0] : b.kids.find((k) => bounds.get(k).end < cutoff);
    if (last) {
      push(span, bounds.get(last).end, sectionEnd);
      span = last;
      cutoff = null;
    } else {
      push(span, b.start, sectionEnd);
      if (span === model.root || !span.parent) break;
      cutoff = b.start;
      span = span.parent;
    }
  }
  for (const list of segments.values()) list.sort((a, b) => a.start - b.start);
  return segments;
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
