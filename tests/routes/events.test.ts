import assert from "node:assert/strict";
import { createEventRoutes } from "../../routes/events.ts";
import { createServiceKeys, type ServiceKeys } from "../../src/auth/service_keys.ts";
import type { Publisher } from "../../src/delivery/publisher.ts";
import { createMetrics } from "../../src/metrics.ts";
import { createMemoryStore } from "../../src/store/memory_store.ts";

const KEY = "pk_live_0123456789abcdef";

function envelope() {
  return {
    metadata: {
      id: crypto.randomUUID(),
      type: "REALTIME",
      emitter: "test",
      source: "feedback",
      topic: "t",
    },
    payload: {},
    routing: { audience: { type: "USER", targets: ["a"] } },
  };
}

Deno.test("event routes verify the service key once per request", async () => {
  const real = createServiceKeys([{ name: "api", key: KEY, scopes: ["events:publish"] }]);
  let verified = 0;
  const keys: ServiceKeys = {
    verify(presented) {
      verified++;
      return real.verify(presented);
    },
  };
  const publisher: Publisher = {
    resumeUnfinished: () => Promise.resolve(0),
    idle: () => Promise.resolve(),
    resumed: () => undefined,
    publish: (e) =>
      Promise.resolve({
        result: {
          id: e.metadata.id,
          accepted_at: new Date().toISOString(),
          targeted: 1,
          unknown_targets: [],
        },
        replayed: false,
      }),
  };
  const store = createMemoryStore({ recentWindowMs: 60_000 });
  const app = createEventRoutes({
    keys,
    publisher,
    store,
    metrics: createMetrics(),
    maxBodyBytes: 65_536,
  });

  const posted = await app.request("/v1/events", {
    method: "POST",
    headers: { "X-API-Key": KEY, "Content-Type": "application/json" },
    body: JSON.stringify(envelope()),
  });
  assert.equal(posted.status, 202);
  assert.equal(verified, 1);

  await app.request(`/v1/events/${crypto.randomUUID()}`, { headers: { "X-API-Key": KEY } });
  assert.equal(verified, 2);

  // Both routes still refuse a request without a key.
  const anonymous = await app.request("/v1/events", { method: "POST", body: "{}" });
  assert.notEqual(anonymous.status, 202);
  assert.equal(verified, 2);
});
