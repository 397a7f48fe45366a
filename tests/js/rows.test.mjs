// Which rows of the timeline show (trace_viewer/static/trace/timeline/rows.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { criticalPath } from "../../trace_viewer/static/trace/critical-path/compute.js";
import {
  deepestOpen,
  hiddenRows,
  shallowestFolded,
} from "../../trace_viewer/static/trace/timeline/rows.js";
import { loadFixture } from "./fixtures.mjs";

const names = (model, ids) => [...ids].map((id) => model.byId.get(id).name).sort();

test("a collapsed span hides its descendants, and shows as folded", () => {
  const { model, id } = loadFixture("concurrent-siblings");
  const { hidden, folded } = hiddenRows(model.order, new Set([id("3")]));
  assert.deepEqual(names(model, hidden), ["SELECT stock"], "check_stock 3's own SELECT");
  assert.deepEqual([...folded], [id("3")]);
  const top = hiddenRows(model.order, new Set([id("1"), id("3")]));
  assert.equal(top.hidden.size, model.spans.length - 1, "all but the root");
  assert.deepEqual([...top.folded], [id("1")], "a fold inside a fold is not shown as one");
  assert.equal(hiddenRows(model.order, new Set([id("6")])).folded.size, 0, "a leaf cannot fold");
});

test("critical path only: every span off the path is hidden", () => {
  const { model } = loadFixture("concurrent-siblings");
  const critical = criticalPath(model);
  const { hidden } = hiddenRows(model.order, new Set(), { criticalOnly: true, critical });
  const shown = model.order.filter((s) => !hidden.has(s.id)).map((s) => s.name);
  assert.deepEqual(shown, ["POST /reservations", "check_stock", "SELECT stock"]);
  assert.equal(hiddenRows(model.order, new Set(), { critical }).hidden.size, 0, "when off");
});

test("collapse +1 folds the deepest open level; expand +1 opens the shallowest folded", () => {
  const { model, id } = loadFixture("overlapping-children");
  const none = new Set();
  assert.deepEqual(deepestOpen(model.order, none, none), [id("2")], "A, the deepest parent");
  const collapsed = new Set([id("1"), id("2")]);
  const { hidden } = hiddenRows(model.order, collapsed);
  assert.deepEqual(shallowestFolded(model.order, collapsed, hidden), [id("1")]);
});
