import assert from "node:assert/strict";
import { Hono } from "hono";
import { createClientIp, parseCidr } from "../../src/ratelimit/client_ip.ts";
import { loadConfig } from "../../src/config.ts";

/** The address `trusted` finds for a request from `peer` carrying `forwarded`. */
async function clientOf(trusted: string[], peer: string, forwarded?: string) {
  const clientIp = createClientIp(trusted);
  let found: string | undefined = "unset";
  const app = new Hono().get("/", (c) => {
    found = clientIp(c);
    return c.text("ok");
  });
  await app.request("/", {
    headers: forwarded === undefined ? {} : { "x-forwarded-for": forwarded },
  }, { remoteAddr: { hostname: peer } });
  return found;
}

Deno.test("the peer is the client when no proxy is trusted, whatever X-Forwarded-For says", async () => {
  assert.equal(await clientOf([], "192.0.2.10", "203.0.113.5"), "192.0.2.10");
});

Deno.test("a trusted proxy's X-Forwarded-For names the client, right-most untrusted first", async () => {
  const trusted = ["10.0.0.0/8", "192.0.2.1"];
  assert.equal(await clientOf(trusted, "10.1.1.1", "203.0.113.5"), "203.0.113.5");
  // Entries a client prepended itself are not believed.
  assert.equal(await clientOf(trusted, "10.1.1.1", "1.2.3.4, 203.0.113.5"), "203.0.113.5");
  // A chain of trusted proxies is walked through.
  assert.equal(await clientOf(trusted, "192.0.2.1", "203.0.113.5, 10.9.9.9"), "203.0.113.5");
  // An untrusted peer's header is ignored.
  assert.equal(await clientOf(trusted, "198.51.100.7", "203.0.113.5"), "198.51.100.7");
  // No header, or only trusted hops: the furthest trusted hop.
  assert.equal(await clientOf(trusted, "10.1.1.1"), "10.1.1.1");
  assert.equal(await clientOf(trusted, "10.1.1.1", "10.2.2.2"), "10.2.2.2");
  // A malformed entry ends the walk at the proxy that forwarded it.
  assert.equal(await clientOf(trusted, "10.1.1.1", "203.0.113.5, not-an-ip"), "10.1.1.1");
});

Deno.test("IPv6 and IPv4-mapped addresses match their ranges", async () => {
  assert.equal(await clientOf(["fd00::/8"], "fd00::1", "2001:db8::7"), "2001:db8::7");
  assert.equal(await clientOf(["10.0.0.0/8"], "::ffff:10.0.0.1", "203.0.113.9"), "203.0.113.9");
  assert.equal(await clientOf(["10.0.0.0/8"], "fd00::1", "203.0.113.9"), "fd00::1");
});

Deno.test("trusted proxies are CIDRs or addresses, and a bad one names the variable", () => {
  assert.ok(parseCidr("10.0.0.0/8"));
  assert.ok(parseCidr("::1"));
  assert.equal(parseCidr("10.0.0.0/40"), undefined);
  assert.equal(parseCidr("proxy.local"), undefined);
  assert.deepEqual(
    loadConfig({ RELAIS_TRUSTED_PROXIES: " 10.0.0.0/8 , 127.0.0.1 " }).trustedProxies,
    ["10.0.0.0/8", "127.0.0.1"],
  );
  assert.throws(
    () => loadConfig({ RELAIS_TRUSTED_PROXIES: "proxy.local" }),
    /^ConfigError: Invalid RELAIS_TRUSTED_PROXIES: "proxy.local"/,
  );
});
