/** What `DELETE /v1/users/:id` answers: a count of everything that went. */

import assert from "node:assert/strict";
import { SERVICE_KEY, startServer } from "../_support/server.ts";
import { startPushService } from "../push/_push_service.ts";

Deno.test("an erasure's answer counts the push subscriptions that went", async () => {
  const push = startPushService();
  const server = await startServer();
  try {
    const bearer = await server.token("lea");
    for (const name of ["laptop", "phone"]) {
      const subscriber = await push.subscriber(name);
      const res = await server.request("/v1/me/push-subscriptions", {
        bearer,
        body: subscriber.json,
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    const erased = await server.request("/v1/users/lea", { method: "DELETE", apiKey: SERVICE_KEY });
    assert.equal(erased.status, 200, JSON.stringify(erased.body));
    assert.equal((erased.body.erased as Record<string, number>).push_subscriptions, 2);
    assert.equal((erased.body.erased as Record<string, number>).push_tasks, 0);
  } finally {
    await server.close();
    await push.close();
  }
});
