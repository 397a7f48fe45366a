// A trace's log records (GET /api/logs?trace_id=, OTLP JSON resourceLogs) placed on the trace
// model: each record's offset from the trace start, the span it was written in, its severity.
import { anyValue, attrList, toBigInt, valueText } from "../../common.js";
import { serviceName } from "../model.js";

/** OTLP severity numbers (1-24) in six ranges, as the logs data model names them. */
const SEVERITIES = ["trace", "debug", "info", "warn", "error", "fatal"];

/** "trace" … "fatal" for an OTLP severity number; "unset" for 0 or none. */
export function severityName(number) {
  const n = Number(number) || 0;
  if (n < 1 || n > 24) return "unset";
  return SEVERITIES[Math.floor((n - 1) / 4)];
}

/**
 * The log records of `resourceLogs`, in time order, each with `offset` (ns from the trace's
 * start, a Number), `span` (the model's span it was written in, or null when that span is
 * not in the trace), `service`, `severity` ("info" …), `severityText`, `body` (text) and
 * `attributes` ([[key, value]]). A record without a time takes its observed time.
 */
export function buildLogs(model, resourceLogs) {
  const logs = [];
  for (const rl of resourceLogs || []) {
    const service = serviceName(rl.resource?.attributes);
    for (const sl of rl.scopeLogs || []) {
      for (const raw of sl.logRecords || []) {
        const abs = toBigInt(
          raw.timeUnixNano && raw.timeUnixNano !== "0" ? raw.timeUnixNano : raw.observedTimeUnixNano,
        );
        const spanId = String(raw.spanId || "").toLowerCase();
        const severity = severityName(raw.severityNumber);
        const body = anyValue(raw.body);
        logs.push({
          abs,
          offset: Number(abs - model.startAbs),
          spanId,
          span: model.byId.get(spanId) || null,
          service,
          severity,
          severityText: raw.severityText || severity.toUpperCase(),
          body: typeof body === "string" ? body : valueText(body),
          attributes: attrList(raw.attributes),
        });
      }
    }
  }
  return logs.sort((a, b) => (a.abs < b.abs ? -1 : a.abs > b.abs ? 1 : 0));
}

/** The logs by the id of the span they were written in (in time order, as given). */
export function logsBySpan(logs) {
  const bySpan = new Map();
  for (const log of logs) {
    if (!bySpan.has(log.spanId)) bySpan.set(log.spanId, []);
    bySpan.get(log.spanId).push(log);
  }
  return bySpan;
}
