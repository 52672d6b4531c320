/** The tracing module: spans under their parent, and the trace id on log records. */

import assert from "node:assert/strict";
import { trace } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { type LogRecord, reset } from "@logtape/logtape";
import { configureLogging, getLog } from "../../src/log.ts";
import { createTracing } from "../../src/tracing.ts";

const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
);

Deno.test("log records written under a traced run carry its trace id, across awaits", async () => {
  const records: LogRecord[] = [];
  await configureLogging("info", (record) => records.push(record));
  try {
    const tracing = createTracing();
    const ids = await tracing.run("work", { "relais.test": true }, async (ids) => {
      await Promise.resolve();
      getLog("test").info("Inside the span");
      return ids;
    });
    getLog("test").info("Outside the span");

    const inside = records.find((r) => r.message.join("") === "Inside the span");
    const outside = records.find((r) => r.message.join("") === "Outside the span");
    assert.equal(inside?.properties.trace_id, ids.traceId);
    assert.equal(inside?.properties.span_id, ids.spanId);
    assert.equal(outside?.properties.trace_id, undefined);
    const [span] = exporter.getFinishedSpans();
    assert.equal(span.name, "work");
    assert.equal(span.spanContext().traceId, ids.traceId);
  } finally {
    await reset();
  }
});

Deno.test("a run whose work fails ends its span marked as an error", async () => {
  exporter.reset();
  const tracing = createTracing();
  await assert.rejects(
    tracing.run("failing", {}, () => Promise.reject(new Error("Commit refused"))),
    /Commit refused/,
  );
  const [span] = exporter.getFinishedSpans();
  assert.equal(span.name, "failing");
  assert.equal(span.status.message, "Commit refused");
});

Deno.test("a span started with a parent joins the parent's trace", () => {
  exporter.reset();
  const tracing = createTracing();
  const parent = tracing.start("parent");
  const child = tracing.start("child", parent.spanContext(), { "relais.seq": 1 });
  child.end();
  parent.end();
  const [first] = exporter.getFinishedSpans();
  assert.equal(first.name, "child");
  assert.equal(first.spanContext().traceId, parent.spanContext().traceId);
  assert.equal(first.parentSpanContext?.spanId, parent.spanContext().spanId);
  assert.equal(first.attributes["relais.seq"], 1);
});
