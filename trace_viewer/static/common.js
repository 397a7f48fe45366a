// Shared helpers for the viewer's pages (the list, the trace, the comparison, the graph).
// Plain ES2020 modules, no build step, no network access beyond this viewer's own API.

/**
 * Create an element: h("a", {href: "/x", class: "y"}, "text", childNode, ...). A class may be
 * a list, its empty entries left out: class: ["row", error ? "error" : ""].
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
    } else if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value)) {
        if (prop.startsWith("--")) el.style.setProperty(prop, v);
        else el.style[prop] = v;
      }
    } else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// ---------------------------------------------------------------------------------------------
// Durations and times

/** A duration in nanoseconds as milliseconds with sensible precision ("12.3 ms", "1.24 s"). */
export function fmtMs(ns) {
  const ms = Number(ns) / 1e6;
  if (!Number.isFinite(ms)) return "?";
  const abs = Math.abs(ms);
  if (abs >= 1000) return `${(ms / 1000).toFixed(abs >= 100000 ? 0 : 2)} s`;
  if (abs === 0) return "0 ms";
  if (abs < 0.001) return "<0.001 ms";
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return `${ms.toFixed(digits)} ms`;
}

/** Like fmtMs, for an axis: no trailing zeros ("0 ms", "12.5 ms", "1.5 s"). */
export function fmtTick(ns, stepNs) {
  if (ns === 0) return "0 ms";
  const ms = ns / 1e6;
  const stepMs = stepNs / 1e6;
  const inSeconds = stepMs >= 1000 || ms >= 10000;
  const value = inSeconds ? ms / 1000 : ms;
  const step = inSeconds ? stepMs / 1000 : stepMs;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return `${value.toFixed(decimals)} ${inSeconds ? "s" : "ms"}`;
}

/** About `count` round tick positions (1, 2, 5 × 10^n) across [0, total] ns. */
export function niceTicks(total, count = 6) {
  if (!(total > 0)) return { step: 1, ticks: [0] };
  const rough = total / count;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough);
  const ticks = [];
  for (let t = 0; t <= total + step * 1e-9; t += step) ticks.push(t);
  return { step, ticks };
}

/** Nanoseconds since the epoch (string or number) as a BigInt. */
export function toBigInt(value) {
  try {
    return BigInt(String(value ?? "0").split(".")[0]);
  } catch {
    return 0n;
  }
}

/** Epoch nanoseconds as a local wall-clock time, with the date when it is not today. */
export function fmtClock(epochNs, { withDate = "auto" } = {}) {
  const date = new Date(Number(toBigInt(epochNs) / 1000000n));
  if (Number.isNaN(date.getTime())) return "?";
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  const time =
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `.${pad(date.getMilliseconds(), 3)}`;
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  if (withDate === false || (withDate === "auto" && sameDay)) return time;
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}`;
}

/** "3 s ago", "5 min ago", "2 h ago", "4 d ago" (future times, from skewed clocks: "just now"). */
export function fmtAgo(epochNs) {
  const ms = Date.now() - Number(toBigInt(epochNs) / 1000000n);
  if (!Number.isFinite(ms)) return "";
  if (ms < 1000) return "just now";
  const s = ms / 1000;
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// ---------------------------------------------------------------------------------------------
// Service colours: a fixed palette (no red or pink: those mean "error"), assigned by a hash of
// the service name so a service keeps its colour across pages and reloads. Collisions inside
// the set of known services are resolved by probing, in sorted order, so the assignment only
// depends on the set of names.

export const PALETTE = [
  // Each at least 3:1 against white (WCAG non-text contrast), distinct hues, none red or pink.
  // (Ordered so that ordersim's four services hash to blue, green, purple and orange.)
  "#0f7f86", // teal
  "#a67c00", // ochre
  "#8c564b", // brown
  "#6b7280", // slate
  "#5f7a1a", // olive
  "#1f77b4", // blue
  "#d35f00", // orange
  "#7b5ea7", // purple
  "#3d5a98", // indigo
  "#2e8540", // green
  "#9c4f96", // plum
  "#00838f", // cyan
];

function hashName(name) {
  let hash = 2166136261; // FNV-1a
  for (let i = 0; i < name.length; i += 1) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 16777619) >>> 0;
  }
  return hash;
}

export class ServiceColors {
  constructor(names = []) {
    this.map = new Map();
    this.add(names);
  }

  add(names) {
    const fresh = [...new Set(names)].filter((n) => !this.map.has(n)).sort();
    const used = new Set(this.map.values());
    for (const name of fresh) {
      let index = hashName(name) % PALETTE.length;
      for (let probe = 0; probe < PALETTE.length && used.has(PALETTE[index]); probe += 1) {
        index = (index + 1) % PALETTE.length;
      }
      this.map.set(name, PALETTE[index]);
      used.add(PALETTE[index]);
    }
    return this;
  }

  get(name) {
    if (!this.map.has(name)) this.add([name]);
    return this.map.get(name);
  }
}

/** A small service label: coloured dot + name. */
export function serviceChip(name, colors, extraClass = "") {
  return h(
    "span",
    { class: `chip ${extraClass}`.trim(), style: { "--svc": colors.get(name) }, title: name },
    h("span", { class: "dot", "aria-hidden": "true" }),
    name,
  );
}

// ---------------------------------------------------------------------------------------------
// HTTP

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET a JSON document; HttpError with the server's message on a non-2xx answer. */
export async function getJSON(url, { signal } = {}) {
  const response = await fetch(url, { headers: { accept: "application/json" }, signal });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const detail = body && (body.detail || body.error?.message || body.errors?.[0]?.msg);
    const text =
      typeof detail === "string" ? detail : JSON.stringify(detail ?? response.statusText);
    throw new HttpError(response.status, `${response.status}: ${text}`);
  }
  return body;
}

// ---------------------------------------------------------------------------------------------
// OTLP JSON values

/**
 * An OTLP JSON double: a number, or a string for NaN and ±Infinity — "NaN", "+Inf", "-Inf" as
 * Jaeger (and this viewer) write them, "Infinity", "-Infinity" in protobuf's JSON mapping.
 */
export function parseDouble(value) {
  if (typeof value === "number") return value;
  const text = String(value ?? "").trim();
  if (/^[+]?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  return Number(text);
}

/** An OTLP AnyValue as a plain JS value (intValue stays a string: it is an int64). */
export function anyValue(value) {
  if (!value || typeof value !== "object") return value ?? null;
  if ("stringValue" in value) return value.stringValue;
  if ("intValue" in value) return String(value.intValue);
  if ("doubleValue" in value) return parseDouble(value.doubleValue);
  if ("boolValue" in value) return Boolean(value.boolValue);
  if ("arrayValue" in value) return (value.arrayValue?.values || []).map(anyValue);
  if ("kvlistValue" in value) {
    return Object.fromEntries(
      (value.kvlistValue?.values || []).map((kv) => [kv.key, anyValue(kv.value)]),
    );
  }
  if ("bytesValue" in value) return `base64:${value.bytesValue}`;
  return null;
}

/** OTLP attributes ([{key, value}]) as [[key, plainValue], ...] in their original order. */
export function attrList(attributes) {
  return (attributes || []).map((kv) => [kv.key ?? "", anyValue(kv.value)]);
}

/** NaN and ±Infinity as Jaeger writes them ("NaN", "+Inf", "-Inf"), any other number as JS does. */
function numberText(value) {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Display text for a plain attribute value (JSON.stringify alone would print NaN as null). */
export function valueText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number") return numberText(value);
  return JSON.stringify(value, (_, v) =>
    typeof v === "number" && !Number.isFinite(v) ? numberText(v) : v,
  );
}
