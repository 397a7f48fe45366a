// The trace page's state in the URL's fragment (trace_viewer/static/trace/location.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { formatHash, parseHash } from "../../trace_viewer/static/trace/location.js";

test("the fragment names the view, the span, the range and each view's options", () => {
  const state = parseHash("#view=statistics&sort=count.asc&by=service&span=00AB&critical=1");
  assert.equal(state.view, "statistics");
  assert.equal(state.sort, "count.asc");
  assert.equal(state.by, "service");
  assert.equal(state.span, "00ab");
  assert.equal(state.critical, true);
  assert.equal(formatHash(state), "#view=statistics&span=00ab&sort=count.asc&by=service&critical=1");
});

test("the timeline and the old #span= links need no view; unknown views and ids are dropped", () => {
  assert.deepEqual(parseHash("#span=abc").view, "timeline");
  assert.equal(parseHash("#span=abc").span, "abc");
  assert.equal(parseHash("#view=nope").view, "timeline");
  assert.equal(parseHash("#span=<script>").span, null);
  assert.equal(formatHash({ view: "timeline", span: null, range: "" }), "");
  assert.equal(formatHash({ view: "flamegraph", focus: "0.2" }), "#view=flamegraph&focus=0.2");
  assert.equal(formatHash(parseHash("")), "");
});
