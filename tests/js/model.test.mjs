// Unit tests of the trace model (trace_viewer/static/trace/model.js) and common.js, run with
// Node's own test runner: `node --test tests/js/` (tests/test_browser.py runs it).
import assert from "node:assert/strict";
import { test } from "node:test";

import { anyValue, valueText } from "../../trace_viewer/static/common.js";
import { criticalPath } from "../../trace_viewer/static/trace/critical-path/compute.js";
import {
  buildModel,
  httpStatus,
  overhangs,
  sanitizedBounds,
} from "../../trace_viewer/static/trace/model.js";
import { loadFixture } from "./fixtures.mjs";

const TRACE = "0af7651916cd43dd8448eb211c80319c";
const BASE = 1_767_225_600_000_000_000n;
const SERVER = 2;
const CLIENT = 3;
const INTERNAL = 1;

/** An OTLP JSON span; times in µs from BASE, so ns-exact sub-millisecond overhangs. */
function span(id, name, startUs, endUs, { parent, kind = INTERNAL, attributes = [] } = {}) {
  return {
    traceId: TRACE,
    spanId: id.padStart(16, "0"),
    parentSpanId: parent ? parent.padStart(16, "0") : "",
    name,
    kind,
    startTimeUnixNano: String(BASE + BigInt(startUs) * 1000n),
    endTimeUnixNano: String(BASE + BigInt(endUs) * 1000n),
    attributes,
  };
}

function trace(spansByService, { resourceSchemaUrl, scopeSchemaUrl } = {}) {
  return Object.entries(spansByService).map(([service, spans]) => ({
    resource: { attributes: [{ key: "service.name", value: { stringValue: service } }] },
    ...(resourceSchemaUrl ? { schemaUrl: resourceSchemaUrl } : {}),
    scopeSpans: [
      { scope: { name: "test" }, ...(scopeSchemaUrl ? { schemaUrl: scopeSchemaUrl } : {}), spans },
    ],
  }));
}

// order-service: a SERVER root, an INTERNAL step, and the CLIENT call it makes; payment: the
// SERVER span of that call ends 420 µs after the CLIENT span, and a background child of the
// step outlives it by 3 ms; a span inside its parent is not marked.
const OVERHANGING = trace({
  "order-service": [
    span("1", "POST /orders", 0, 100_000, { kind: SERVER }),
    span("2", "charge_payment", 10_000, 60_000, { parent: "1" }),
    span("3", "POST", 11_000, 50_000, { parent: "2", kind: CLIENT }),
    span("5", "audit", 20_000, 63_000, { parent: "2" }),
    span("6", "save_order", 61_000, 62_000, { parent: "1" }),
  ],
  "payment-service": [span("4", "POST /charges", 12_000, 50_420, { parent: "3", kind: SERVER })],
});

test("a SERVER span ending after its CLIENT caller is marked, with the overhang in ns", () => {
  const model = buildModel(TRACE, OVERHANGING);
  const found = overhangs(model);
  assert.deepEqual(found.get("0000000000000004"), {
    before: 0,
    after: 420_000,
    parentId: "0000000000000003",
    calledBy: true,
  });
});

test("a child outliving its parent is marked, not as a call", () => {
  const found = overhangs(buildModel(TRACE, OVERHANGING));
  assert.deepEqual(found.get("0000000000000005"), {
    before: 0,
    after: 3_000_000,
    parentId: "0000000000000002",
    calledBy: false,
  });
});

test("spans inside their parent, and roots, are not marked", () => {
  const found = overhangs(buildModel(TRACE, OVERHANGING));
  assert.deepEqual([...found.keys()].sort(), ["0000000000000004", "0000000000000005"]);
});

test("a child starting before its parent is marked too", () => {
  const model = buildModel(
    TRACE,
    trace({
      a: [span("1", "parent", 1_000, 5_000)],
      b: [span("2", "early", 500, 4_000, { parent: "1" })],
    }),
  );
  assert.deepEqual(overhangs(model).get("0000000000000002"), {
    before: 500_000,
    after: 0,
    parentId: "0000000000000001",
    calledBy: false,
  });
});

test("the critical path still clips an overhanging child to its parent", () => {
  const model = buildModel(TRACE, OVERHANGING);
  const segments = criticalPath(model).get("0000000000000005") || [];
  const end = model.byId.get("0000000000000002").end;
  assert.ok(segments.length > 0 && segments.every((s) => s.end <= end));
});

test("spans an injected fault touched are flagged and counted", () => {
  const fault = { key: "ordersim.fault.injected", value: { boolValue: true } };
  const model = buildModel(
    TRACE,
    trace({
      payment: [
        span("1", "POST /charges", 0, 10, { kind: SERVER, attributes: [fault] }),
        span("2", "authorize_card", 1, 9, { parent: "1" }),
      ],
    }),
  );
  assert.equal(model.byId.get("0000000000000001").fault, true);
  assert.equal(model.byId.get("0000000000000002").fault, false);
  assert.equal(model.faultCount, 1);
});

test("ERROR spans above an injected fault are its consequence, not real errors", () => {
  const fault = { key: "ordersim.fault.injected", value: { boolValue: true } };
  const failed = (s) => ({ ...s, status: { code: "STATUS_CODE_ERROR" } });
  // The fault at 5 fails 4, 3, 2 and 1 above it; 6 (beside it, under place_order) fails on
  // its own, and so does 7, under the faulted span; 8 is a latency fault without an error.
  const model = buildModel(
    TRACE,
    trace({
      "order-service": [
        failed(span("1", "POST /orders", 0, 100, { kind: SERVER })),
        failed(span("2", "place_order", 1, 99, { parent: "1" })),
        failed(span("3", "charge_payment", 2, 50, { parent: "2" })),
        failed(span("4", "POST", 3, 49, { parent: "3", kind: CLIENT })),
        failed(span("6", "GET", 60, 70, { parent: "2", kind: CLIENT })),
      ],
      "payment-service": [
        failed(span("5", "POST /charges", 4, 48, { parent: "4", kind: SERVER, attributes: [fault] })),
        failed(span("7", "authorize_card", 5, 6, { parent: "5" })),
      ],
      "inventory-service": [span("8", "GET /products", 61, 69, { parent: "6", attributes: [fault] })],
    }),
  );
  const caused = model.spans.filter((s) => s.faultCaused).map((s) => Number(s.id));
  assert.deepEqual(caused.sort(), [1, 2, 3, 4, 5, 6, 8]);
  assert.equal(model.errorCount, 7);
  // 6 is an ancestor of the latency fault at 8: its ERROR is counted as the fault's too.
  assert.equal(model.realErrorCount, 1);
  assert.equal(model.faultCount, 2);
});

test("without an injected fault every ERROR span is a real error", () => {
  const failed = (s) => ({ ...s, status: { code: 2 } });
  const model = buildModel(
    TRACE,
    trace({
      "order-service": [
        failed(span("1", "POST /orders", 0, 100, { kind: SERVER })),
        failed(span("2", "place_order", 1, 99, { parent: "1" })),
        span("3", "audit", 2, 3, { parent: "1" }),
      ],
    }),
  );
  assert.equal(model.realErrorCount, 2);
  assert.equal(model.spans.filter((s) => s.faultCaused).length, 0);
});

test("schema URLs of the resource and the scope reach each span", () => {
  const model = buildModel(
    TRACE,
    trace(
      { svc: [span("1", "op", 0, 10)] },
      { resourceSchemaUrl: "https://x/1.26.0", scopeSchemaUrl: "https://x/1.11.0" },
    ),
  );
  const only = model.byId.get("0000000000000001");
  assert.equal(only.resourceSchemaUrl, "https://x/1.26.0");
  assert.equal(only.scope.schemaUrl, "https://x/1.11.0");
});

test("NaN and infinite doubles read and print as Jaeger writes them", () => {
  assert.ok(Number.isNaN(anyValue({ doubleValue: "NaN" })));
  assert.equal(anyValue({ doubleValue: "+Inf" }), Infinity);
  assert.equal(anyValue({ doubleValue: "Infinity" }), Infinity);
  assert.equal(anyValue({ doubleValue: "-Inf" }), -Infinity);
  assert.equal(anyValue({ doubleValue: 1.5 }), 1.5);
  assert.equal(valueText(Number.NaN), "NaN");
  assert.equal(valueText(Infinity), "+Inf");
  assert.equal(valueText([1, -Infinity]), '[1,"-Inf"]');
});

test("SERVER and CLIENT spans carry their HTTP status; other kinds and bad values do not", () => {
  const attr = (key, value) => [[key, value]];
  assert.equal(httpStatus(SERVER, attr("http.response.status_code", "402")), 402);
  assert.equal(httpStatus(CLIENT, attr("http.status_code", 503)), 503, "the old convention");
  assert.equal(httpStatus(INTERNAL, attr("http.response.status_code", "200")), null);
  assert.equal(httpStatus(SERVER, attr("http.response.status_code", "OK")), null);
  assert.equal(httpStatus(SERVER, []), null);
  const model = buildModel(
    TRACE,
    trace({
      svc: [
        span("1", "POST /orders", 0, 10, {
          kind: SERVER,
          attributes: [{ key: "http.response.status_code", value: { intValue: "402" } }],
        }),
      ],
    }),
  );
  assert.equal(model.root.httpStatus, 402);
});

test("sanitized bounds clip a child that outlives its parent", () => {
  const { model, id } = loadFixture("child-longer-than-parent");
  const bounds = sanitizedBounds(model);
  assert.deepEqual(bounds.get(id("3")), { start: 20e6, end: 50e6 }, "L cut at S's end");
  assert.deepEqual(bounds.get(id("2")), { start: 10e6, end: 50e6 }, "S inside R: as it is");
  assert.equal(model.byId.get(id("3")).end, 80e6, "the span itself keeps its own end");
});

test("sanitized bounds drop a child entirely outside its parent, with its descendants", () => {
  const { model, id } = loadFixture("child-outside-parent");
  const bounds = sanitizedBounds(model);
  assert.equal(bounds.has(id("3")), false, "X starts after S ended");
  assert.equal(bounds.has(id("5")), false, "X1, X's child, goes with it");
  assert.deepEqual(bounds.get(id("4")), { start: 10e6, end: 12e6 }, "early is cut at S's start");
  assert.equal(bounds.size, 3);
});

test("a missing, empty or non-string service.name is Jaeger's placeholder, as the list shows it", () => {
  const empty = trace({ "": [span("1", "root", 0, 10)] });
  const missing = [{ resource: {}, scopeSpans: [{ spans: [span("2", "other", 0, 10)] }] }];
  const wrong = [
    {
      resource: { attributes: [{ key: "service.name", value: { intValue: "7" } }] },
      scopeSpans: [{ spans: [span("3", "third", 0, 10)] }],
    },
  ];
  assert.deepEqual(buildModel(TRACE, empty).services, ["empty-service-name"]);
  assert.deepEqual(buildModel(TRACE, missing).services, ["missing-service-name"]);
  assert.deepEqual(buildModel(TRACE, wrong).services, ["service-name-wrong-type"]);
});
