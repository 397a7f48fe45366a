// The critical path of a trace: pure (tests/js/critical-path.test.mjs). The timeline draws it
// as a band under each bar (timeline/render.js); the statistics sum it per operation.
import { sanitizedBounds } from "../model.js";

/**
 * The critical path, as Jaeger UI computes it (`computeCriticalPath`): start at the root's end;
 * the child that finishes last before the current cut-off is on the path — the gap between its
 * end and the cut-off is the parent's own time on the path — then descend into that child. A
 * span with no (more) children finishing before the cut-off is on the path from its start to
 * the cut-off; the cut-off moves to its start and we return to its parent. Children are first
 * clipped to their parent's range, and those entirely outside it dropped (`sanitizedBounds`).
 *
 * Returns Map<spanId, [{start, end}]> of the path's segments (trace-relative ns), each span's
 * in time order.
 */
export function criticalPath(model, bounds = sanitizedBounds(model)) {
  const kids = new Map(); // span -> its kept children, the latest-ending first
  const kidsOf = (span) => {
    if (!kids.has(span)) {
      const kept = span.children.filter((c) => bounds.has(c.id));
      kept.sort((a, b) => bounds.get(b.id).end - bounds.get(a.id).end);
      kids.set(span, kept);
    }
    return kids.get(span);
  };
  const segments = new Map();
  const push = (span, start, end) => {
    if (end <= start) return;
    if (!segments.has(span.id)) segments.set(span.id, []);
    segments.get(span.id).push({ start, end });
  };
  let span = model.root;
  let cutoff = null;
  for (let guard = 0; guard < 4 * model.spans.length + 8; guard += 1) {
    const b = bounds.get(span.id);
    const sectionEnd = cutoff === null ? b.end : cutoff;
    const last =
      cutoff === null ? kidsOf(span)[0] : kidsOf(span).find((k) => bounds.get(k.id).end < cutoff);
    if (last) {
      push(span, bounds.get(last.id).end, sectionEnd);
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

/** The time a list of segments covers (they do not overlap: one span's path segments). */
export function pathTime(segments) {
  return (segments || []).reduce((total, s) => total + s.end - s.start, 0);
}

/**
 * Segments in time order, those less than `minGap` apart joined: drawn at a given scale, a
 * parent's path time between children that are on the path too is often a fraction of a pixel
 * apart, and drawn one by one it reads as a barcode instead of one band.
 */
export function mergeSegments(segments, minGap) {
  const merged = [];
  for (const seg of [...(segments || [])].sort((a, b) => a.start - b.start)) {
    const last = merged[merged.length - 1];
    if (last && seg.start - last.end <= minGap) last.end = Math.max(last.end, seg.end);
    else merged.push({ start: seg.start, end: seg.end });
  }
  return merged;
}
