/**
 * One browser, two users: a push endpoint belongs to the user who registered it last, so
 * the notifications of a user who left a shared device stop reaching it.
 */

import assert from "node:assert/strict";
import { endpointId } from "../../src/push/subscription.ts";
import { pushSubscriptionKey, pushUserKey } from "../../src/store/keys.ts";
import { envelope, eventually, SERVICE_KEY, startServer } from "../_support/server.ts";
import type { TestServer } from "../_support/server.ts";
import { startPushService, type Subscriber } from "./_push_service.ts";

async function subscribe(server: TestServer, user: string, subscriber: Subscriber) {
  const res = await server.request("/v1/me/push-subscriptions", {
    bearer: await server.token(user),
    body: subscriber.json,
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

async function endpointsOf(server: TestServer, user: string) {
  const res = await server.request(`/v1/users/${user}/export`, { apiKey: SERVICE_KEY });
  assert.equal(res.status, 200);
  return (res.body.push_subscriptions as { endpoint: string }[]).map((s) => s.endpoint);
}

Deno.test("an endpoint registered by a second user moves to them: the first user's notifications no longer reach it", async () => {
  const push = startPushService();
  const server = await startServer();
  try {
    // A shared browser: ana registers it, logs out; ben logs in on it and registers it.
    const browser = await push.subscriber("shared");
    await subscribe(server, "ana", browser);
    await subscribe(server, "ben", browser);
    assert.deepEqual(await endpointsOf(server, "ana"), []);
    assert.deepEqual(await endpointsOf(server, "ben"), [browser.endpoint]);

    const forAna = envelope(["ana"]);
    const forBen = envelope(["ben"]);
    assert.equal((await server.publish(forAna)).status, 202);
    assert.equal((await server.publish(forBen)).status, 202);
    // Barrier: ana's push would have been queued, and sent, before ben's.
    await push.waitFor(browser, 1);
    assert.deepEqual(
      browser.received.map((r) => r.payload.id),
      [(forBen.metadata as { id: string }).id],
    );

    // Back to ana on the same browser: it follows her again, and ben has it no more.
    await subscribe(server, "ana", browser);
    assert.deepEqual(await endpointsOf(server, "ben"), []);
    const again = envelope(["ben", "ana"]);
    assert.equal((await server.publish(again)).status, 202);
    await push.waitFor(browser, 2);
    await eventually(async () => {
      const res = await server.request("/v1/users/ben/export", { apiKey: SERVICE_KEY });
      return (res.body.push_tasks as unknown[]).length === 0;
    });
    assert.equal(browser.received.length, 2);
    assert.deepEqual(push.rejected, []);
  } finally {
    await server.close();
    await push.close();
  }
});

Deno.test("a subscription saved before endpoints were indexed gets no push once another user registered its endpoint", async () => {
  const push = startPushService();
  const dir = await Deno.makeTempDir({ prefix: "relais-push-" });
  const env = { RELAIS_KV_PATH: `${dir}/relais.kv` };
  const browser = await push.subscriber("shared");
  // The store as an earlier relais left it: the same browser under ana and under ben, and
  // no index saying whose it is.
  const kv = await Deno.openKv(env.RELAIS_KV_PATH);
  const id = await endpointId(browser.endpoint);
  for (const user of ["ana", "ben"]) {
    await kv.set(pushSubscriptionKey(user, id), {
      id,
      endpoint: browser.endpoint,
      keys: browser.json.keys,
      createdAt: 1,
    });
    await kv.set(pushUserKey(user), true);
  }
  kv.close();
  const server = await startServer(env);
  try {
    // Ben's browser registers again, as the SDK does: from now on it is his.
    await subscribe(server, "ben", browser);
    const forAna = envelope(["ana"]);
    const forBen = envelope(["ben"]);
    assert.equal((await server.publish(forAna)).status, 202);
    assert.equal((await server.publish(forBen)).status, 202);
    // Barrier: ana's push would have been sent before ben's.
    await push.waitFor(browser, 1);
    assert.deepEqual(
      browser.received.map((r) => r.payload.id),
      [(forBen.metadata as { id: string }).id],
    );
    // Ana's stale copy went when her push was decided on.
    assert.deepEqual(await endpointsOf(server, "ana"), []);
    assert.deepEqual(await endpointsOf(server, "ben"), [browser.endpoint]);
    assert.deepEqual(push.rejected, []);
  } finally {
    await server.close();
    await push.close();
    await Deno.remove(dir, { recursive: true });
  }
});
