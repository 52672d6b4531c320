/**
 * Two nodes in cluster mode (`RELAIS_CLUSTER=redis`) on one Redis: a kill switch set on
 * one node reaches the other through the cluster bus. Both nodes re-read their switches
 * only once an hour here, so nothing but the bus can carry the change.
 */

import assert from "node:assert/strict";
import { ignoreRedis, redisUrl } from "../_support/redis_kv.ts";
import { SERVICE_KEY, startServer } from "../_support/server.ts";

Deno.test({
  name: "a kill switch set on one node closes the sockets of its scope on another node",
  ignore: ignoreRedis,
  async fn() {
    const env = {
      RELAIS_CLUSTER: "redis",
      REDIS_URL: redisUrl(),
      RELAIS_REDIS_PREFIX: `relais-test-${crypto.randomUUID()}`,
      RELAIS_CONTROLS_REFRESH_MS: "3600000",
    };
    const a = await startServer({ ...env, RELAIS_NODE_ID: "node-a" });
    const b = await startServer({ ...env, RELAIS_NODE_ID: "node-b" });
    try {
      const { client, welcome } = await b.login("camille");
      assert.equal(welcome.type, "welcome");
      const put = await a.request("/v1/admin/controls", {
        method: "PUT",
        apiKey: SERVICE_KEY,
        body: { scope: { type: "SYSTEM" }, features: ["realtime"], reason: "Maintenance" },
      });
      assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
      let deadline: ReturnType<typeof setTimeout> | undefined;
      const closed = await Promise.race([
        client.closed,
        new Promise<never>((_, reject) => {
          deadline = setTimeout( // deadline, not synchronisation
            () => reject(new Error("node b never heard of the switch")),
            10_000,
          );
        }),
      ]).finally(() => clearTimeout(deadline));
      assert.equal(closed.code, 4003);
      assert.match(closed.reason, /Maintenance/);
      // And node b refuses new connections while the switch holds.
      const again = await b.login("yanis").catch((e) => e);
      assert.ok(
        again instanceof Error || again.welcome?.type !== "welcome",
        "node b still admits connections",
      );
    } finally {
      await a.close();
      await b.close();
    }
  },
});
