import assert from "node:assert/strict";
import { createMetrics } from "../../src/metrics.ts";
import { createHealthRoutes } from "../../routes/health.ts";

function routes(ready: () => Promise<boolean>, readyTimeoutMs?: number) {
  const metrics = createMetrics({ defaultMetrics: false });
  return { metrics, app: createHealthRoutes({ ready, metrics, readyTimeoutMs }) };
}

Deno.test("healthz answers ok even when the server is not ready", async () => {
  const { app } = routes(() => Promise.resolve(false));

  const res = await app.request("/healthz");

  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: "ok" });
  assert.equal(res.headers.get("Cache-Control"), "no-store");
});

Deno.test("readyz answers ready when the readiness check passes", async () => {
  const { app } = routes(() => Promise.resolve(true));

  const res = await app.request("/readyz");

  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: "ready" });
});

Deno.test("readyz answers 503 unavailable when the server is not ready", async () => {
  const { app } = routes(() => Promise.resolve(false));

  const res = await app.request("/readyz");
  const body = await res.json();

  assert.equal(res.status, 503);
  assert.equal(body.error.code, "unavailable");
  assert.match(body.error.message, /^Server is not ready/);
});

Deno.test("readyz answers 503 without the cause when the readiness check throws", async () => {
  const { app } = routes(() => Promise.reject(new Error("kv at /secret/path is closed")));

  const res = await app.request("/readyz");
  const text = await res.text();

  assert.equal(res.status, 503);
  assert.equal(JSON.parse(text).error.code, "unavailable");
  assert.equal(text.includes("/secret/path"), false);
});

Deno.test("readyz answers 503 when the readiness check hangs past the timeout", async () => {
  let release = () => {};
  const hanging = new Promise<boolean>((resolve) => {
    release = () => resolve(true);
  });
  const { app } = routes(() => hanging, 20);

  const res = await app.request("/readyz");
  release();

  assert.equal(res.status, 503);
  assert.match((await res.json()).error.message, /within 20 ms/);
});

Deno.test("metrics answers the Prometheus text with its content type", async () => {
  const { app, metrics } = routes(() => Promise.resolve(true));
  metrics.acks.inc(7);

  const res = await app.request("/metrics");
  const text = await res.text();

  assert.equal(res.status, 200);
  assert.equal(res.headers.get("Content-Type"), metrics.contentType);
  assert.match(text, /^# TYPE relais_acks_total counter$/m);
  assert.match(text, /^relais_acks_total 7$/m);
});
