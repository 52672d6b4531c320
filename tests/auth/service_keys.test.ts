import assert from "node:assert/strict";
import { createServiceKeys } from "../../src/auth/service_keys.ts";
import type { ServiceKey } from "../../src/config.ts";

const KEYS: ServiceKey[] = [
  { name: "portfolio-api", key: "pk_live_0123456789abcdef", scopes: ["events:publish"] },
  { name: "ops", key: "ops_0123456789abcdef0123", scopes: ["admin", "directory:write"] },
];

Deno.test("service keys return the principal of a matching key", async () => {
  const keys = createServiceKeys(KEYS);

  const portfolio = await keys.verify("pk_live_0123456789abcdef");
  const ops = await keys.verify("ops_0123456789abcdef0123");

  assert.deepEqual(portfolio, {
    kind: "service",
    name: "portfolio-api",
    scopes: ["events:publish"],
  });
  assert.deepEqual(ops, { kind: "service", name: "ops", scopes: ["admin", "directory:write"] });
});

Deno.test("service keys reject unknown, near-miss, empty and oversized keys", async () => {
  const keys = createServiceKeys(KEYS);

  for (
    const presented of [
      "nope",
      "pk_live_0123456789abcdeF",
      "pk_live_0123456789abcde",
      "pk_live_0123456789abcdef ",
      "",
      "x".repeat(5000),
    ]
  ) {
    assert.equal(await keys.verify(presented), undefined, `accepted ${presented.slice(0, 30)}`);
  }
});

Deno.test("service keys with no configured key accept nothing", async () => {
  assert.equal(await createServiceKeys([]).verify("pk_live_0123456789abcdef"), undefined);
});

Deno.test("service keys hand out copies that cannot widen the configured scopes", async () => {
  const keys = createServiceKeys(KEYS);

  const first = await keys.verify("pk_live_0123456789abcdef");
  first?.scopes.push("admin");
  const second = await keys.verify("pk_live_0123456789abcdef");

  assert.deepEqual(second?.scopes, ["events:publish"]);
  assert.deepEqual(KEYS[0].scopes, ["events:publish"]);
});

Deno.test("service keys answer a repeated key from memory and still refuse near misses", async () => {
  const keys = createServiceKeys(KEYS);
  const digest = crypto.subtle.digest;
  let hashed = 0;
  crypto.subtle.digest = (...args: Parameters<typeof digest>) => {
    hashed++;
    return digest.apply(crypto.subtle, args);
  };
  try {
    assert.equal((await keys.verify("pk_live_0123456789abcdef"))?.name, "portfolio-api");
    const first = hashed;
    assert.equal((await keys.verify("pk_live_0123456789abcdef"))?.name, "portfolio-api");
    assert.equal(hashed, first);
    assert.equal(await keys.verify("pk_live_0123456789abcdeF"), undefined);
    assert.equal(await keys.verify("pk_live_0123456789abcdeF"), undefined);
    assert.equal(hashed, first + 2);
    const cached = await keys.verify("pk_live_0123456789abcdef");
    cached?.scopes.push("admin");
    assert.deepEqual((await keys.verify("pk_live_0123456789abcdef"))?.scopes, ["events:publish"]);
  } finally {
    crypto.subtle.digest = digest;
  }
});
