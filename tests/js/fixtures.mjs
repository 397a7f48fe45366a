// The fixture traces beside the unit tests (fixtures/*.json: OTLP JSON, as GET
// /api/v3/traces/{id} returns it, with a "description" of what each one is for), loaded as
// trace models.
import { readFileSync } from "node:fs";

import { buildModel } from "../../trace_viewer/static/trace/model.js";

export const FIXTURE_TRACE = "0af7651916cd43dd8448eb211c80319c";
export const MS = 1e6;

/** {model, id}: the model of fixtures/<name>.json; id("3") is the span id "0000000000000003". */
export function loadFixture(name) {
  const url = new URL(`./fixtures/${name}.json`, import.meta.url);
  const body = JSON.parse(readFileSync(url, "utf8"));
  return {
    model: buildModel(FIXTURE_TRACE, body.resourceSpans),
    id: (short) => short.padStart(16, "0"),
  };
}
