// The comparison page's URL and the trace ids users type (trace_viewer/static/compare/location.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  compareUrl,
  parseComparePath,
  traceIdFrom,
} from "../../trace_viewer/static/compare/location.js";

const A = "5eed0000c0ffee0000000000000b0a7d";
const B = "0af7651916cd43dd8448eb211c80319c";

test("/trace/<a>...<b> names both sides; each id is checked on its own", () => {
  assert.deepEqual(parseComparePath(`/trace/${A}...${B}`), {
    a: { raw: A, id: A },
    b: { raw: B, id: B },
  });
  assert.deepEqual(parseComparePath(`/trace/${A.toUpperCase()}...${B}/`).a, {
    raw: A.toUpperCase(),
    id: A,
  });
  assert.deepEqual(parseComparePath(`/trace/${A}...nope`).b, { raw: "nope", id: null });
  assert.deepEqual(parseComparePath(`/trace/${A}...%3Cb%3E`).b, { raw: "<b>", id: null });
  assert.deepEqual(parseComparePath("/trace/%E0%A4%A...x").a.id, null, "bad escapes are text");
  assert.equal(compareUrl(A, B), `/trace/${A}...${B}`);
  assert.deepEqual(parseComparePath(compareUrl(B, A)).a.id, B);
});

test("a path without two sides is not a comparison", () => {
  for (const path of [`/trace/${A}`, `/trace/${A}...`, `/trace/...${A}`, "/", ""])
    assert.equal(parseComparePath(path), null, path);
});

test("an id is taken as typed or pasted: bare, in any case, or in a trace URL", () => {
  assert.equal(traceIdFrom(` ${A.toUpperCase()} `), A);
  assert.equal(traceIdFrom(`http://127.0.0.1:16686/trace/${B}#span=00ab`), B);
  assert.equal(traceIdFrom(`https://jaeger.example/trace/${B}?uiFind=x`), B);
  assert.equal(traceIdFrom(`/trace/${B}`), B);
  for (const text of ["", "nope", A.slice(1), `${A}0`, `/trace/${A}0`, null, undefined])
    assert.equal(traceIdFrom(text), null, String(text));
});
