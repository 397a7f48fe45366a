// The service graph page's URL and its links (trace_viewer/static/graph/location.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DEFAULT_LOOKBACK,
  LOOKBACKS,
  dependenciesUrl,
  edgeHrefs,
  formatPageQuery,
  nodeHref,
  parsePageQuery,
} from "../../trace_viewer/static/graph/location.js";

const lookback = (key) => LOOKBACKS.find((l) => l.key === key);

test("the page's query: a lookback among Jaeger's keys and an endTs in ms, both optional", () => {
  assert.deepEqual(parsePageQuery(""), { lookback: lookback("1h"), endTs: null, problems: [] });
  assert.equal(DEFAULT_LOOKBACK, "1h");
  assert.deepEqual(parsePageQuery("?lookback=15m&endTs=1767225600000"), {
    lookback: lookback("15m"),
    endTs: 1767225600000,
    problems: [],
  });
  for (const state of [
    { lookback: lookback("1h"), endTs: null },
    { lookback: lookback("7d"), endTs: null },
    { lookback: lookback("5m"), endTs: 1767225600000 },
  ]) {
    assert.deepEqual(parsePageQuery(formatPageQuery(state)), { ...state, problems: [] });
  }
  assert.equal(formatPageQuery({ lookback: lookback("1h"), endTs: null }), "");
  assert.equal(formatPageQuery({ lookback: "24h" }), "?lookback=24h");
});

test("what the page does not understand falls back to the default, and says so", () => {
  const bad = parsePageQuery("?lookback=3weeks&endTs=yesterday");
  assert.equal(bad.lookback.key, "1h");
  assert.equal(bad.endTs, null);
  assert.deepEqual(bad.problems, [
    'lookback "3weeks" is none of 5m, 15m, 1h, 6h, 24h, 2d, 7d: showing the last hour',
    'endTs "yesterday" is not a time in ms since the epoch: showing until now',
  ]);
  assert.equal(parsePageQuery("?endTs=-5").endTs, null);
  assert.equal(parsePageQuery("?endTs=1e12").endTs, null);
});

test("the API request: endTs (now unless fixed) and lookback, in ms", () => {
  const now = 1767225600123.7;
  assert.equal(
    dependenciesUrl({ lookback: lookback("1h"), endTs: null }, now),
    "/api/dependencies?endTs=1767225600123&lookback=3600000",
  );
  assert.equal(
    dependenciesUrl({ lookback: lookback("5m"), endTs: 1000 }, now),
    "/api/dependencies?endTs=1000&lookback=300000",
  );
  assert.deepEqual(
    LOOKBACKS.map((l) => l.ms),
    [300e3, 900e3, 3600e3, 21600e3, 86400e3, 172800e3, 604800e3],
  );
});

test("a service leads to its traces; one that never answered to none", () => {
  assert.equal(nodeHref({ name: "payment-service", kind: "service" }), "/?service=payment-service");
  assert.equal(nodeHref({ name: "a b&c", kind: "service" }), "/?service=a+b%26c");
  assert.equal(nodeHref({ name: "127.0.0.1:8002", kind: "unanswered" }), null);
});

test("an edge leads to its callee's traces, its failures to those with errors", () => {
  const edge = { parent: "order-service", child: "payment-service", errors: 2 };
  assert.deepEqual(edgeHrefs(edge, "service"), {
    calls: "/?service=payment-service",
    errors: "/?service=payment-service&error=true",
  });
  assert.deepEqual(edgeHrefs({ ...edge, errors: 0 }, "service"), {
    calls: "/?service=payment-service",
    errors: null,
  });
  assert.deepEqual(edgeHrefs({ ...edge, errors: null }, "service").errors, null);
  // Nobody answered: the failed calls are the caller's spans.
  const unanswered = { parent: "order-service", child: "127.0.0.1:8002", errors: 3 };
  assert.deepEqual(edgeHrefs(unanswered, "unanswered"), {
    calls: "/?service=order-service&error=true",
    errors: "/?service=order-service&error=true",
  });
});

test("the links keep the graph's window: its lookback up to now, or its range up to endTs", () => {
  const hour = LOOKBACKS.find((l) => l.key === "1h");
  const edge = { parent: "order-service", child: "payment-service", errors: 2 };
  assert.equal(
    nodeHref({ name: "payment-service", kind: "service" }, { lookback: hour, endTs: null }),
    "/?service=payment-service&lookback=1h",
  );
  const past = { lookback: hour, endTs: 1_700_000_000_000 };
  assert.deepEqual(edgeHrefs(edge, "service", past), {
    calls:
      "/?service=payment-service&lookback=custom&start=1699996400000000&end=1700000000000000",
    errors:
      "/?service=payment-service&error=true&lookback=custom&start=1699996400000000" +
      "&end=1700000000000000",
  });
});
