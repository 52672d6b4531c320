/** Ops endpoints and credential lifetime on live connections. */

import assert from "node:assert/strict";
import { envelope, SERVICE_KEY, startServer } from "../_support/server.ts";

Deno.test("admin actors lists live user actors and shows one snapshot with its timers", async () => {
  const server = await startServer({ RELAIS_ACK_RETRY_BASE_MS: "30000" });
  try {
    const { client } = await server.login("camille");
    await server.publish(envelope(["camille"], { routing: { retry: { ack_required: true } } }));
    await client.next((f) => f.type === "event");

    const list = await server.request("/v1/admin/actors?kind=user", { apiKey: SERVICE_KEY });
    assert.equal(list.status, 200);
    const actors = list.body.actors as { id: string; kind: string; state: unknown }[];
    assert.deepEqual(actors.map((a) => [a.kind, a.id]), [["user", "camille"]]);
    // The machine's state is the user's presence; its windows and waits are timers.
    assert.equal(actors[0].state, "online");

    const one = await server.request("/v1/admin/actors/user/camille", { apiKey: SERVICE_KEY });
    assert.equal(one.status, 200);
    const context = one.body.context as {
      pending: Record<string, { attempts: number }>;
      connections: object;
    };
    assert.equal(Object.keys(context.pending).length, 1);
    assert.equal(Object.keys(context.connections).length, 1);
    // The timers the machine is waiting on, from its context: the redelivery of the unacked
    // item at its ack wait, and the push budget window that its push started.
    const timers = one.body.timers as { id: string; event: string; delay_ms: number }[];
    const redelivery = timers.find((t) => t.id === "nextDue");
    assert.ok(redelivery, JSON.stringify(timers));
    assert.ok(redelivery.delay_ms > 20_000 && redelivery.delay_ms <= 30_000);
    const seq = Number(Object.keys(context.pending)[0]);
    assert.equal(redelivery.event, `redeliver seq ${seq}`);
    assert.ok(timers.some((t) => t.id === "budgetWindow"), JSON.stringify(timers));
    assert.ok(!timers.some((t) => t.id === "idle"), "an online user does not passivate");

    const missing = await server.request("/v1/admin/actors/user/nobody", { apiKey: SERVICE_KEY });
    assert.equal(missing.status, 404);
    const badKind = await server.request("/v1/admin/actors/robot/x", { apiKey: SERVICE_KEY });
    assert.equal(badKind.status, 400);
    const asUser = await server.request("/v1/admin/actors", {
      bearer: await server.token("camille"),
    });
    assert.equal(asUser.status, 401);
  } finally {
    await server.close();
  }
});

Deno.test("health, readiness, metrics and the OpenAPI document answer", async () => {
  const server = await startServer();
  try {
    const { client } = await server.login("yanis");
    await server.publish(envelope(["yanis"]));
    await client.next((f) => f.type === "event");
    assert.equal((await server.request("/healthz")).status, 200);
    assert.equal((await server.request("/readyz")).status, 200);
    const metrics = await (await fetch(`${server.origin}/metrics`)).text();
    assert.match(metrics, /relais_connections\{transport="ws"\} 1/);
    assert.match(metrics, /relais_events_accepted_total\{type="NOTIFICATION"\} 1/);
    assert.match(metrics, /relais_deliveries_total 1/);
    assert.match(metrics, /relais_actors\{kind="user"\} 1/);
    assert.match(metrics, /relais_publish_to_deliver_seconds_count 1/);
    const doc = await server.request("/openapi.json");
    const paths = doc.body.paths as Record<string, Record<string, unknown>>;
    assert.ok(paths["/v1/events"].post);
    assert.ok(paths["/v1/events/{id}"].get);
    const docs = await (await fetch(`${server.origin}/docs`)).text();
    assert.match(docs, /\/v1\/me\/notifications/);
  } finally {
    await server.close();
  }
});

Deno.test("a token expiring during a live connection ends it with 4001 unless refreshed", async () => {
  const server = await startServer();
  try {
    // Measures time: a token's expiry is whole seconds from a whole-second issue time, so a
    // 2-second token lives 1 to 2 s (a 1-second one could be expired before its hello).
    const short = await server.login("camille", {
      token: await server.token("camille", { ttlSeconds: 2 }),
    });
    const refreshed = await server.login("yanis", {
      token: await server.token("yanis", { ttlSeconds: 2 }),
    });
    refreshed.client.send({ type: "hello", token: await server.token("yanis") });
    const closed = await short.client.closed;
    assert.equal(closed.code, 4001);
    assert.match(closed.reason, /expired/i);
    refreshed.client.send({ type: "ping", ref: "still-here" });
    assert.equal((await refreshed.client.next((f) => f.type === "pong")).ref, "still-here");
    // A hello cannot switch the connection to another user.
    refreshed.client.send({ type: "hello", token: await server.token("camille"), ref: "h" });
    assert.equal((await refreshed.client.next((f) => f.type === "error")).code, "forbidden");
  } finally {
    await server.close();
  }
});
