import assert from "node:assert/strict";
import { Hono } from "hono";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { createOriginPolicy } from "../../src/controls/origins.ts";
import { AppError } from "../../src/errors.ts";

const base = { RELAIS_JWT_SECRET: "x".repeat(32), RELAIS_SERVICE_KEYS: "a:0123456789abcdef:admin" };

Deno.test("allowed origins default to any in development and to none in production", () => {
  assert.equal(loadConfig({ ...base, RELAIS_ENV: "development" }).allowedOrigins, "*");
  assert.deepEqual(loadConfig({ ...base, RELAIS_ENV: "production" }).allowedOrigins, []);
  assert.deepEqual(
    loadConfig({
      ...base,
      RELAIS_ALLOWED_ORIGINS: "https://portfolio.example.org, http://localhost:5173",
    }).allowedOrigins,
    ["https://portfolio.example.org", "http://localhost:5173"],
  );
});

Deno.test("an allowed origin that is not an origin stops start-up naming the variable", () => {
  for (
    const bad of ["portfolio.example.org", "https://x.org/path", "ftp://x.org", "https://x.org/"]
  ) {
    assert.throws(
      () => loadConfig({ ...base, RELAIS_ALLOWED_ORIGINS: bad }),
      (e) => e instanceof ConfigError && e.message.startsWith("Invalid RELAIS_ALLOWED_ORIGINS:"),
      bad,
    );
  }
});

Deno.test("the origin policy lets listed, same-origin and non-browser requests through only", async () => {
  const policy = createOriginPolicy(["https://portfolio.example.org"]);
  const app = new Hono().get("/", (c) => {
    try {
      policy.assert(c);
      return c.text("ok");
    } catch (e) {
      return c.text((e as AppError).code, 403);
    }
  });
  const status = async (headers: Record<string, string>) =>
    (await app.request("http://relais.example.org/", { headers })).status;
  assert.equal(await status({}), 200);
  assert.equal(await status({ origin: "https://portfolio.example.org" }), 200);
  assert.equal(
    await status({ origin: "http://relais.example.org", host: "relais.example.org" }),
    200,
  );
  assert.equal(await status({ origin: "https://evil.example.com" }), 403);
  assert.equal(await status({ origin: "null" }), 403);
  assert.equal(policy.cors("https://portfolio.example.org"), "https://portfolio.example.org");
  assert.equal(policy.cors("https://evil.example.com"), null);
  assert.equal(createOriginPolicy("*").cors("https://any.example"), "*");
});
