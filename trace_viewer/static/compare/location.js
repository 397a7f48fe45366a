// The comparison page's URL, /trace/<a>...<b> (Jaeger UI's), and trace ids as a user types or
// pastes them. Pure (tests/js/compare-location.test.mjs).

/** A trace id as the viewer stores it: 32 hex digits. */
export const TRACE_ID = /^[0-9a-f]{32}$/;

/** The comparison URL of two traces. */
export function compareUrl(a, b) {
  return `/trace/${encodeURIComponent(a)}...${encodeURIComponent(b)}`;
}

/**
 * The two sides of a comparison path: {a, b} as written (decoded, trimmed), each with its id
 * ({raw, id}: id the lowercased 32-hex id, or null when `raw` is not one); null when the path
 * is not /trace/<a>...<b>.
 */
export function parseComparePath(pathname) {
  const last = String(pathname || "").replace(/\/+$/, "").split("/").pop() || "";
  let text;
  try {
    text = decodeURIComponent(last);
  } catch {
    text = last;
  }
  const at = text.indexOf("...");
  if (at <= 0 || at + 3 >= text.length) return null;
  const side = (raw) => {
    const trimmed = raw.trim();
    const id = trimmed.toLowerCase();
    return { raw: trimmed, id: TRACE_ID.test(id) ? id : null };
  };
  return { a: side(text.slice(0, at)), b: side(text.slice(at + 3)) };
}

/**
 * The trace id in what a user typed or pasted: an id (any case, spaces around it ignored), or
 * a viewer or Jaeger UI trace URL (…/trace/<id>, its fragment and query ignored); null for
 * anything else.
 */
export function traceIdFrom(text) {
  const value = String(text ?? "").trim();
  if (TRACE_ID.test(value.toLowerCase())) return value.toLowerCase();
  const match = /\/trace\/([0-9a-fA-F]{32})(?=$|[/?#])/.exec(value);
  return match ? match[1].toLowerCase() : null;
}
