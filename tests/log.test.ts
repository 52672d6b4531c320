import assert from "node:assert/strict";
import { type LogRecord, reset } from "@logtape/logtape";
import { Hono } from "hono";
import type { AppEnv } from "../src/auth/principal.ts";
import { configureLogging, formatLogRecord, getLog, requestLog } from "../src/log.ts";

function capture(): { records: LogRecord[]; sink: (record: LogRecord) => void } {
  const records: LogRecord[] = [];
  return { records, sink: (record) => records.push(record) };
}

function app() {
  return new Hono<AppEnv>()
    .use(requestLog())
    .get("/v1/sse", (c) => c.text(c.var.requestId))
    .get("/raw", () => new Response("raw"))
    .get("/boom", () => {
      throw new Error("boom");
    })
    .onError((_error, c) =>
      c.json({ error: { code: "internal", message: "Internal error" } }, 500)
    );
}

Deno.test("request log writes one JSON line with the request id and a path without its query", async () => {
  const { records, sink } = capture();
  await configureLogging("info", sink);
  try {
    const res = await app().request("/v1/sse?ticket=s3cr3t-ticket&after=4", {
      headers: { Authorization: "Bearer header-secret", "X-Request-Id": "req-123" },
    });

    assert.deepEqual(res.status, 200);
    assert.deepEqual(await res.text(), "req-123");
    assert.deepEqual(res.headers.get("X-Request-Id"), "req-123");
    assert.deepEqual(records.length, 1);
    const line = formatLogRecord(records[0]);
    assert(line.endsWith("\n"));
    const json = JSON.parse(line);
    assert.deepEqual(json.logger, "relais.http");
    assert.deepEqual(json.level, "INFO");
    assert.deepEqual(json.method, "GET");
    assert.deepEqual(json.path, "/v1/sse");
    assert.deepEqual(json.status, 200);
    assert.deepEqual(json.request_id, "req-123");
    assert.deepEqual(typeof json.duration_ms, "number");
    assert(!line.includes("ticket"), line);
    assert(!line.includes("s3cr3t"), line);
    assert(!line.includes("header-secret"), line);
  } finally {
    await reset();
  }
});

Deno.test("request log replaces a malformed incoming request id with a UUID", async () => {
  const { records, sink } = capture();
  await configureLogging("info", sink);
  try {
    const res = await app().request("/v1/sse", {
      headers: { "X-Request-Id": 'bad id"<script>' + "x".repeat(80) },
    });

    const id = res.headers.get("X-Request-Id") ?? "";
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.deepEqual(await res.text(), id);
    assert.deepEqual(records[0].properties.request_id, id);
  } finally {
    await reset();
  }
});

Deno.test("request log echoes the id on raw responses and logs server errors at error level", async () => {
  const { records, sink } = capture();
  await configureLogging("info", sink);
  try {
    const raw = await app().request("/raw", { headers: { "X-Request-Id": "r.1" } });
    const boom = await app().request("/boom");

    assert.deepEqual(raw.headers.get("X-Request-Id"), "r.1");
    assert.deepEqual(boom.status, 500);
    assert(boom.headers.get("X-Request-Id"));
    assert.deepEqual(records.map((r) => r.level), ["info", "error"]);
    assert.deepEqual(records[1].properties.status, 500);
  } finally {
    await reset();
  }
});

Deno.test("configureLogging filters below its level and can be called again", async () => {
  const first = capture();
  await configureLogging("warning", first.sink);
  getLog("test").info("Hidden");
  getLog("test").warning("Shown {n}", { n: 1 });
  const second = capture();
  await configureLogging("debug", second.sink);
  getLog("test").debug("Debug");
  await reset();

  assert.deepEqual(first.records.length, 1);
  assert.deepEqual(first.records[0].category, ["relais", "test"]);
  assert.deepEqual(JSON.parse(formatLogRecord(first.records[0])).message, "Shown 1");
  assert.deepEqual(second.records.length, 1);
});
