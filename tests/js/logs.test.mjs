// Unit tests of the trace page's log model (trace_viewer/static/trace/logs/model.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { buildLogs, logsBySpan, severityName } from "../../trace_viewer/static/trace/logs/model.js";
import { buildModel } from "../../trace_viewer/static/trace/model.js";

const TRACE = "0af7651916cd43dd8448eb211c80319c";
const BASE = 1_767_225_600_000_000_000n;
const ns = (ms) => String(BASE + BigInt(Math.round(ms * 1000)) * 1000n);

function span(id, name, startMs, endMs, parent) {
  return {
    traceId: TRACE,
    spanId: id.padStart(16, "0"),
    parentSpanId: parent ? parent.padStart(16, "0") : "",
    name,
    kind: 1,
    startTimeUnixNano: ns(startMs),
    endTimeUnixNano: ns(endMs),
  };
}

const resource = (service) => ({
  attributes: [{ key: "service.name", value: { stringValue: service } }],
});

const model = buildModel(TRACE, [
  {
    resource: resource("order-service"),
    scopeSpans: [{ spans: [span("1", "place_order", 0, 100), span("2", "save_order", 90, 99, "1")] }],
  },
]);

function record(spanId, atMs, body, extra = {}) {
  return {
    timeUnixNano: ns(atMs),
    severityNumber: 9,
    body: { stringValue: body },
    traceId: TRACE,
    spanId: spanId.padStart(16, "0"),
    ...extra,
  };
}

test("records are placed on their spans, in time order, with offsets from the trace start", () => {
  const logs = buildLogs(model, [
    {
      resource: resource("order-service"),
      scopeLogs: [
        {
          logRecords: [
            record("1", 99.5, "order confirmed"),
            record("2", 95, "saved", { attributes: [{ key: "shop.order.id", value: { stringValue: "ord_1" } }] }),
            record("1", 10, "order placed"),
          ],
        },
      ],
    },
  ]);
  assert.deepEqual(
    logs.map((l) => [l.body, l.span.name, l.offset / 1e6]),
    [
      ["order placed", "place_order", 10],
      ["saved", "save_order", 95],
      ["order confirmed", "place_order", 99.5],
    ],
  );
  assert.deepEqual(logs[1].attributes, [["shop.order.id", "ord_1"]]);
  assert.equal(logs[0].service, "order-service");
  const bySpan = logsBySpan(logs);
  assert.deepEqual(
    bySpan.get("0000000000000001").map((l) => l.body),
    ["order placed", "order confirmed"],
  );
});

test("a record of a span not in the trace, or without time, is kept", () => {
  const logs = buildLogs(model, [
    {
      resource: resource("x"),
      scopeLogs: [
        {
          logRecords: [
            record("9", 5, "elsewhere"),
            { ...record("1", 0, "observed"), timeUnixNano: "0", observedTimeUnixNano: ns(7) },
            { ...record("1", 1, "structured"), body: { kvlistValue: { values: [{ key: "a", value: { intValue: "1" } }] } } },
          ],
        },
      ],
    },
  ]);
  assert.deepEqual(
    logs.map((l) => [l.body, l.span?.name ?? null, l.offset / 1e6]),
    [
      ['{"a":"1"}', "place_order", 1],
      ["elsewhere", null, 5],
      ["observed", "place_order", 7],
    ],
  );
  assert.equal(logs[0].body, '{"a":"1"}');
});

test("severity numbers fall in the data model's six ranges", () => {
  assert.deepEqual(
    [0, 1, 5, 9, 12, 13, 17, 21, 24, 25, "x"].map(severityName),
    ["unset", "trace", "debug", "info", "info", "warn", "error", "fatal", "fatal", "unset", "unset"],
  );
});
