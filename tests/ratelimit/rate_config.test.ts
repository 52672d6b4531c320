import assert from "node:assert/strict";
import { ConfigError, loadConfig, parseRateRule } from "../../src/config.ts";

const base = { RELAIS_ENV: "development", RELAIS_JWT_SECRET: "x".repeat(32) };

Deno.test("a rate rule reads as count per window with a unit, or off", () => {
  assert.deepEqual(parseRateRule("X", "30/10s"), { limit: 30, windowMs: 10_000 });
  assert.deepEqual(parseRateRule("X", "5/1h"), { limit: 5, windowMs: 3_600_000 });
  assert.deepEqual(parseRateRule("X", "100 / 500ms"), { limit: 100, windowMs: 500 });
  assert.deepEqual(parseRateRule("X", "7/m"), { limit: 7, windowMs: 60_000 });
  assert.equal(parseRateRule("X", "OFF"), undefined);
});

Deno.test("a bad rate rule stops start-up with one line naming the variable", () => {
  for (const bad of ["", "30", "0/1s", "ten/1s", "5/0s", "5/2d", "5/48h", "-1/1s"]) {
    assert.throws(
      () => loadConfig({ ...base, RELAIS_RATE_MESSAGES: bad || " x" }),
      (e) => e instanceof ConfigError && e.message.startsWith("Invalid RELAIS_RATE_MESSAGES:"),
      bad,
    );
  }
});

Deno.test("the limiter is Redis when REDIS_URL is set, KV otherwise, and can be chosen", () => {
  assert.equal(loadConfig(base).rate.limiter, "kv");
  assert.equal(loadConfig({ ...base, REDIS_URL: "redis://127.0.0.1:6379" }).rate.limiter, "redis");
  assert.equal(loadConfig({ ...base, RELAIS_RATE_LIMITER: "memory" }).rate.limiter, "memory");
  assert.throws(
    () => loadConfig({ ...base, RELAIS_RATE_LIMITER: "etcd" }),
    (e) => e instanceof ConfigError && /RELAIS_RATE_LIMITER/.test(e.message),
  );
});

Deno.test("the default limits are on, and each can be turned off", () => {
  const config = loadConfig(base);
  assert.deepEqual(config.rate.messages, { limit: 60, windowMs: 10_000 });
  assert.deepEqual(config.rate.conversations, { limit: 30, windowMs: 3_600_000 });
  assert.equal(config.limits.maxConnectionsPerUser, 20);
  assert.equal(loadConfig({ ...base, RELAIS_RATE_EVENTS: "off" }).rate.events, undefined);
});
