import assert from "node:assert/strict";
import * as v from "valibot";
import { ConfigError, loadConfig, VARIABLES } from "../src/config.ts";

const KEY = "svc_0123456789abcdef";

Deno.test("config starts on the embedded defaults in development, generating secrets", () => {
  const config = loadConfig({});
  assert.equal(config.env, "development");
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.port, 8787);
  assert.equal(config.kvPath, "./data/relais.kv");
  assert.equal(config.mail.outboxDir, "./data/outbox");
  assert.equal(config.auth.generated, true);
  assert.ok(config.auth.jwtSecret!.length >= 32);
  assert.equal(config.auth.serviceKeys.length, 1);
  assert.deepEqual(config.auth.serviceKeys[0].scopes, [
    "events:publish",
    "directory:write",
    "conversations:write",
    "privacy",
    "admin",
  ]);
  assert.notEqual(loadConfig({}).auth.jwtSecret, config.auth.jwtSecret, "a new secret each start");
});

Deno.test("config reads service keys whose scopes contain colons", () => {
  const config = loadConfig({
    RELAIS_SERVICE_KEYS: `api:${KEY}:events:publish+directory:write, ops:${KEY}x:admin`,
  });
  assert.deepEqual(config.auth.serviceKeys, [
    { name: "api", key: KEY, scopes: ["events:publish", "directory:write"] },
    { name: "ops", key: `${KEY}x`, scopes: ["admin"] },
  ]);
  assert.equal(config.auth.generated, true, "the JWT secret is still generated");
});

Deno.test("config stops on a bad value with one line naming the variable", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: "eighty" }, /^Invalid PORT: /],
    [{ PORT: "70000" }, /^Invalid PORT: expected at most 65535$/],
    [{ RELAIS_ENV: "staging" }, /^Invalid RELAIS_ENV: /],
    [{ SMTP_URL: "http://mail" }, /^Invalid SMTP_URL: /],
    [{ REDIS_URL: "not a url" }, /^Invalid REDIS_URL: /],
    [{ RELAIS_SERVICE_KEYS: "nokey" }, /^Invalid RELAIS_SERVICE_KEYS: /],
    [{ RELAIS_SERVICE_KEYS: `a:${KEY}:events:read` }, /unknown scope "events:read"/],
    [{ RELAIS_SERVICE_KEYS: "a:short:admin" }, /shorter than 16/],
    [{ RELAIS_GATEWAY_KEYS: "nokid" }, /^Invalid RELAIS_GATEWAY_KEYS: /],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => loadConfig(env), (e) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, message);
      assert.ok(!e.message.includes("\n"));
      assert.ok(!e.message.includes(KEY), "never echoes a key");
      return true;
    });
  }
});

Deno.test("config refuses production without real auth configuration", () => {
  assert.throws(() => loadConfig({ RELAIS_ENV: "production" }), /RELAIS_JWT_SECRET/);
  assert.throws(
    () => loadConfig({ RELAIS_ENV: "production", RELAIS_JWT_SECRET: "x".repeat(40) }),
    /RELAIS_SERVICE_KEYS/,
  );
  const config = loadConfig({
    RELAIS_ENV: "production",
    RELAIS_JWT_SECRET: "x".repeat(40),
    RELAIS_SERVICE_KEYS: `api:${KEY}:events:publish`,
  });
  assert.equal(config.auth.generated, false);
});

Deno.test("config reads the mailer, pacing and directory settings, naming a bad one", () => {
  const config = loadConfig({
    RELAIS_MAIL_GRACE_MS: "1000",
    RELAIS_DIGEST_DAILY_AT: "07:30",
    RELAIS_PUBLIC_URL: "https://relais.example.org",
    RELAIS_PUSH_BUDGET: "5",
    RELAIS_DIRECTORY_FROM_CLAIMS: "true",
  });
  assert.equal(config.mailer.graceMs, 1000);
  assert.equal(config.mailer.dailyDigestAt, "07:30");
  assert.equal(config.mailer.publicUrl, "https://relais.example.org");
  assert.equal(config.mailer.secret, config.auth.jwtSecret);
  assert.equal(config.pacing.pushBudget, 5);
  assert.equal(config.pacing.lowWindowMs, 2000);
  assert.equal(config.directoryFromClaims, true);
  for (
    const [name, value] of [
      ["RELAIS_DIGEST_DAILY_AT", "25:00"],
      ["RELAIS_MAIL_MAX_ATTEMPTS", "0"],
      ["RELAIS_APP_URL", "ftp://x"],
      ["RELAIS_DIRECTORY_FROM_CLAIMS", "maybe"],
      ["RELAIS_TRUSTED_PROXIES", "10.0.0.0/8,gateway.internal"],
      ["RELAIS_TRUSTED_PROXIES", "10.0.0.0/33"],
    ]
  ) {
    assert.throws(
      () => loadConfig({ [name]: value }),
      (e) => e instanceof ConfigError && e.message.startsWith(`Invalid ${name}:`),
    );
  }
});

Deno.test("config reads every declared fallback with its own variable's schema", () => {
  for (const [name, variable] of Object.entries(VARIABLES)) {
    if (!("fallback" in variable)) continue;
    const result = v.safeParse(variable.schema, variable.fallback);
    assert.ok(result.success, `the fallback of ${name} is not valid`);
  }
});

Deno.test("config applies the rules between variables, naming the variable", () => {
  const production = { RELAIS_ENV: "production", RELAIS_SERVICE_KEYS: `api:${KEY}:admin` };
  assert.throws(
    () => loadConfig({ ...production, RELAIS_JWT_SECRET: "short" }),
    (e) =>
      e instanceof ConfigError &&
      e.message === "Invalid RELAIS_JWT_SECRET: expected at least 32 characters",
  );
  const gateway = loadConfig({ ...production, RELAIS_GATEWAY_KEYS: "k1:s3cret, constructor:x" });
  assert.equal(gateway.auth.jwtSecret, undefined, "no secret is generated in production");
  assert.ok(Object.hasOwn(gateway.auth.gatewayKeys, "constructor"));
  assert.equal(gateway.auth.gatewayKeys.k1, "s3cret");
  assert.deepEqual(gateway.allowedOrigins, [], "production allows no other origin by default");

  const jwks = loadConfig({ RELAIS_JWKS_URL: "https://idp.example.org/jwks" });
  assert.equal(jwks.auth.jwtSecret, undefined, "a JWKS URL needs no generated secret");
  assert.equal(jwks.auth.generated, true, "the service key is still generated");
  assert.equal(jwks.mailer.secret.length >= 32, true, "mail links are signed all the same");

  const fromHost = loadConfig({ HOST: "0.0.0.0", PORT: "9000" });
  assert.equal(fromHost.mailer.publicUrl, "http://0.0.0.0:9000");
  assert.equal(fromHost.rate.limiter, "kv");
  assert.throws(
    () => loadConfig({ HOST: "::" }),
    (e) => e instanceof ConfigError && e.message.startsWith("Invalid RELAIS_PUBLIC_URL:"),
    "a host that makes no URL asks for RELAIS_PUBLIC_URL",
  );
  assert.equal(
    loadConfig({ HOST: "::", RELAIS_PUBLIC_URL: "https://relais.example.org" }).host,
    "::",
  );
});
