// Unit tests of the trace list's pure parts (trace_viewer/static/search.js), run with Node's own
// test runner: `node --test tests/js/` (tests/test_browser.py runs it).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  classifyOutcome,
  comparePair,
  durationTicks,
  filtersFromQuery,
  formatTags,
  linearScale,
  normalizeTraceId,
  parseTags,
  queryFromFilters,
  scatterLayout,
  sortTraces,
  timeTicks,
} from "../../trace_viewer/static/search.js";

test("tags: key=value pairs, quoted values, a bare key is true, errors named", () => {
  assert.deepEqual(parseTags("http.response.status_code=402  shop.order.id=ord_1"), {
    tags: { "http.response.status_code": "402", "shop.order.id": "ord_1" },
    error: null,
  });
  assert.deepEqual(parseTags('exception.message="card \\"declined\\"" error'), {
    tags: { "exception.message": 'card "declined"', error: "true" },
    error: null,
  });
  assert.deepEqual(parseTags("url.full=http://x/?a=b"), {
    tags: { "url.full": "http://x/?a=b" },
    error: null,
  });
  assert.deepEqual(parseTags("  "), { tags: {}, error: null });
  assert.equal(parseTags("=402").error, 'no key before "=" at 1');
  assert.match(parseTags('a="open').error, /no closing quote/);
  assert.match(parseTags('a="b"c').error, /a space is missing/);
});

test("tags: formatTags writes what parseTags reads back", () => {
  const tags = { "shop.order.id": "ord_1", message: 'a "b" c', empty: "", "k=v": "x" };
  const text = formatTags(tags);
  assert.equal(text, 'shop.order.id=ord_1 message="a \\"b\\" c" empty="" "k=v"=x');
  assert.deepEqual(parseTags(text), { tags, error: null });
});

test("a trace id box takes 1 to 32 hex digits and pads a 64-bit id", () => {
  assert.equal(normalizeTraceId(" 5EED0000C0FFEE0000000000000B0A7D "), "5eed0000c0ffee0000000000000b0a7d");
  assert.equal(normalizeTraceId("abc"), "0".repeat(29) + "abc");
  assert.equal(normalizeTraceId("xyz"), null);
  assert.equal(normalizeTraceId("a".repeat(33)), null);
  assert.equal(normalizeTraceId(""), null);
});

test("the URL holds the API's parameters, tags as JSON, and the sort; defaults left out", () => {
  const filters = filtersFromQuery(
    "?service=order-service&tags=%7B%22http.response.status_code%22%3A%22402%22%7D&maxDuration=2s&sort=longest&limit=200",
  );
  assert.deepEqual(filters, {
    service: "order-service",
    tags: { "http.response.status_code": "402" },
    maxDuration: "2s",
    sort: "longest",
    limit: "200",
  });
  assert.equal(
    queryFromFilters(filters),
    "service=order-service&tags=%7B%22http.response.status_code%22%3A%22402%22%7D&maxDuration=2s&limit=200&sort=longest",
  );
  // The API gets the same search without the page's sort; the default limit is sent to it.
  assert.equal(queryFromFilters({ ...filters, limit: "50" }, { forApi: true }).includes("sort"), false);
  assert.match(queryFromFilters({ ...filters, limit: "50" }, { forApi: true }), /limit=50/);
  assert.equal(queryFromFilters({ ...filters, limit: "50" }).includes("limit"), false);
  // An operation needs its service; start and end only count in a custom range.
  assert.equal(queryFromFilters({ operation: "x", tags: {} }), "");
  assert.equal(queryFromFilters({ lookback: "1h", start: "1", end: "2", tags: {} }), "lookback=1h");
  const custom = { lookback: "custom", start: "1", end: "2", tags: {} };
  assert.equal(queryFromFilters(custom), "lookback=custom&start=1&end=2");
  assert.equal(queryFromFilters(custom, { forApi: true }), "start=1&end=2");
  assert.deepEqual(filtersFromQuery("lookback=1h&start=5"), { tags: {}, sort: "recent", limit: "50", lookback: "1h" });
  // What cannot be read is dropped, not fatal.
  assert.deepEqual(filtersFromQuery("tags=%7Bnope&sort=sideways").tags, {});
  assert.equal(filtersFromQuery("sort=sideways").sort, "recent");
});

test("outcomes: the root's HTTP status and the order's status, classified", () => {
  const outcome = (rootStatusCode, orderStatus, errorCount = 0) =>
    classifyOutcome({ rootStatusCode, orderStatus, errorCount });
  assert.deepEqual(outcome(201, "confirmed"), { kind: "ok", label: "201 confirmed" });
  assert.deepEqual(outcome(402, "payment_failed", 1), { kind: "declined", label: "402 payment_failed" });
  assert.deepEqual(outcome(409, "rejected"), { kind: "rejected", label: "409 rejected" });
  assert.deepEqual(outcome(503, "failed", 3), { kind: "failed", label: "503 failed" });
  assert.deepEqual(outcome(422, null), { kind: "invalid", label: "422" });
  assert.deepEqual(outcome(200, null), { kind: "ok", label: "200" });
  assert.deepEqual(outcome(null, null), { kind: "unknown", label: "—" });
  assert.deepEqual(outcome(null, null, 2), { kind: "failed", label: "—" });
  assert.deepEqual(outcome(null, "failed"), { kind: "failed", label: "failed" });
});

const rows = [
  { traceID: "a", startTimeUnixNano: "3000000000", durationNano: "50", spanCount: 10, errorCount: 0 },
  { traceID: "b", startTimeUnixNano: "1000000000", durationNano: "90", spanCount: 48, errorCount: 2 },
  { traceID: "c", startTimeUnixNano: "2000000000", durationNano: "90", spanCount: 3, errorCount: 2 },
  { traceID: "d", startTimeUnixNano: "2000000000", durationNano: "10", spanCount: 48, errorCount: 0 },
];

test("sorting as Jaeger offers it, ties newest first then by id", () => {
  const ids = (order) => sortTraces(rows, order).map((r) => r.traceID).join("");
  assert.equal(ids("recent"), "acdb");
  assert.equal(ids("longest"), "cbad");
  assert.equal(ids("shortest"), "dacb");
  assert.equal(ids("most-spans"), "dbac");
  assert.equal(ids("least-spans"), "cadb");
  assert.equal(ids("most-errors"), "cbad");
  assert.equal(ids("nonsense"), "acdb");
  assert.equal(rows[0].traceID, "a", "a copy is sorted, not the rows");
});

test("two ticked traces compare the earlier-started as A, the later as B", () => {
  // rows: b started at 1 s, c and d together at 2 s, a at 3 s.
  assert.deepEqual(comparePair([rows[0], rows[1]]), { a: "b", b: "a" });
  assert.deepEqual(comparePair([rows[1], rows[0]]), { a: "b", b: "a" }, "whatever the tick order");
  assert.deepEqual(comparePair([rows[3], rows[2]]), { a: "c", b: "d" }, "a tie: by id");
  assert.equal(comparePair([rows[0]]), null);
  assert.equal(comparePair([rows[0], rows[1], rows[2]]), null);
  assert.equal(comparePair([rows[0], rows[0]]), null, "one trace is no comparison");
  assert.equal(comparePair([]), null);
  assert.equal(comparePair(undefined), null);
});

test("scales and ticks: linear, round wall-clock steps, round durations from zero", () => {
  const x = linearScale([10, 20], [0, 100]);
  assert.equal(x(15), 50);
  assert.equal(x(20), 100);
  assert.equal(linearScale([5, 5], [0, 100])(5), 50, "a flat domain maps to the middle");
  assert.deepEqual(timeTicks(59_000, 241_000, 4), { step: 60_000, ticks: [60_000, 120_000, 180_000, 240_000] });
  assert.equal(timeTicks(0, 3 * 3_600_000, 6).step, 1_800_000);
  assert.deepEqual(durationTicks(57_000_000, 4), {
    step: 20_000_000,
    ticks: [0, 20_000_000, 40_000_000, 60_000_000],
    top: 60_000_000,
  });
  assert.deepEqual(durationTicks(0), { step: 1, ticks: [0], top: 1 });
});

test("the plot: one dot per trace, later further right, longer higher, coloured by outcome", () => {
  const plotted = [
    { ...rows[0], rootStatusCode: 201, orderStatus: "confirmed" },
    { ...rows[1], rootStatusCode: 402, orderStatus: "payment_failed" },
    { ...rows[3], rootStatusCode: 503, orderStatus: "failed" },
  ];
  const box = { width: 400, height: 200, margin: { left: 40, right: 10, top: 10, bottom: 20 } };
  const { points, xTicks, yTicks } = scatterLayout(plotted, box);
  assert.deepEqual(points.map((p) => [p.traceID, p.kind]), [["a", "ok"], ["b", "declined"], ["d", "failed"]]);
  const [a, b, d] = points;
  assert.ok(b.x < d.x && d.x < a.x, "ordered by start");
  assert.ok(b.x >= 40 && a.x <= 390, "inside the plot");
  assert.ok(b.y < a.y && a.y < d.y, "higher is longer (90 > 50 > 10 ns)");
  assert.equal(yTicks[0].y, 180, "zero at the bottom");
  assert.ok(yTicks.at(-1).y === 10 && yTicks.at(-1).ns >= 90, "the top tick covers the longest");
  assert.ok(xTicks.every((t) => t.x >= 40 && t.x <= 390));
  assert.deepEqual(scatterLayout([], box).points, []);
});
