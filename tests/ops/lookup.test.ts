/**
 * The ops page's admin API: the metrics history, the user and conversation lookups, and
 * disconnecting a user, on a real server over loopback.
 */

import assert from "node:assert/strict";
import type { AppDeps } from "../../src/app/app.ts";
import { createKvControlStore } from "../../src/controls/kv_control_store.ts";
import { createMemoryControlStore } from "../../src/controls/memory_control_store.ts";
import type { ConversationLookup, UserLookup } from "../../src/ops/lookups.ts";
import { bucketQuantile } from "../../src/ops/metrics_history.ts";
import { envelope, eventually, PUBLISH_KEY, SERVICE_KEY, startServer } from "../_support/server.ts";

/** Samples every 100 ms rather than 5 s. */
const FAST_HISTORY = { adapt: (deps: AppDeps) => ({ ...deps, opsHistory: { intervalMs: 100 } }) };

type Point = Record<string, number | null>;

async function history(server: Awaited<ReturnType<typeof startServer>>) {
  const res = await server.request("/v1/admin/metrics/history", { apiKey: SERVICE_KEY });
  assert.equal(res.status, 200);
  return res.body as { interval_ms: number; ingest: boolean; points: Point[] };
}

Deno.test("bucket quantiles interpolate within the bucket, as histogram_quantile does", () => {
  const buckets: [number, number][] = [[0.001, 0], [0.01, 10], [0.1, 10], [Infinity, 10]];
  assert.ok(Math.abs(bucketQuantile(0.5, buckets)! - 0.0055) < 1e-12);
  assert.equal(bucketQuantile(0.5, [[0.001, 0], [Infinity, 0]]), null);
  // Beyond the last finite bound: that bound.
  assert.equal(bucketQuantile(0.99, [[0.01, 0], [Infinity, 4]]), 0.01);
});

Deno.test("the metrics history shows connections, deliveries and latency as events flow", async () => {
  const server = await startServer({}, FAST_HISTORY);
  try {
    const before = await history(server);
    assert.equal(before.ingest, false);
    assert.equal(before.points.at(-1)!.ws, 0);
    assert.equal(before.points.at(-1)!.breaker, 0, "the mailer runs with its breaker closed");

    const { client } = await server.login("camille");
    for (let i = 0; i < 5; i++) await server.publish(envelope(["camille"]));
    await client.next((f) => f.type === "event");
    // Stored readings (not only the one read at the request) carry the deliveries.
    const points = await eventually(
      async () => {
        const h = await history(server);
        const stored = h.points.slice(0, -1);
        return stored.some((p) => (p.deliveries_per_s ?? 0) > 0 && p.p50_ms !== null) &&
          h.points.at(-1)!.ws === 1 && h.points;
      },
      5000,
      "deliveries in the history",
    );
    const busy = points.find((p) => (p.deliveries_per_s ?? 0) > 0)!;
    assert.ok((busy.p99_ms ?? 0) >= (busy.p50_ms ?? 0));
    assert.ok(points.every((p, i) => i === 0 || p.t! >= points[i - 1].t!), "oldest first");

    // A mail for someone with an address waits in the queue (grace period).
    await server.request("/v1/users/yanis", {
      method: "PUT",
      apiKey: SERVICE_KEY,
      body: { email: "yanis@example.org" },
    });
    await server.publish(envelope(["yanis"], { routing: { channels: ["inapp", "email"] } }));
    await eventually(
      async () => ((await history(server)).points.at(-1)!.mail_depth ?? 0) >= 1,
      5000,
      "a queued mail in the history",
    );
  } finally {
    await server.close();
  }
});

Deno.test("the user lookup shows the directory, connections, stream, unread, pending acks, switches and last deliveries", async () => {
  const server = await startServer({ RELAIS_ACK_RETRY_BASE_MS: "60000" });
  try {
    await server.request("/v1/users/camille", {
      method: "PUT",
      apiKey: SERVICE_KEY,
      body: { name: "Camille Martin", roles: ["ROLE_STUDENT"], structures: ["univ-x"] },
    });
    const { client, welcome } = await server.login("camille");
    const acked = envelope(["camille"], { routing: { retry: { ack_required: true } } });
    await server.publish(acked);
    await client.next((f) => f.type === "event");
    await server.request("/v1/admin/controls", {
      method: "PUT",
      apiKey: SERVICE_KEY,
      body: {
        scope: { type: "STRUCTURE", id: "univ-x" },
        features: ["email"],
        reason: "Migration",
      },
    });
    await server.request("/v1/admin/controls", {
      method: "PUT",
      apiKey: SERVICE_KEY,
      body: { scope: { type: "USER", id: "yanis" }, features: ["email"], reason: "Not camille" },
    });

    const { id } = acked.metadata as { id: string };
    const res = await eventually(
      async () => {
        const r = await server.request("/v1/admin/users/camille", { apiKey: SERVICE_KEY });
        const pending = r.body.pending as { next_at: string | null }[];
        return pending.length === 1 && pending[0].next_at !== null && r;
      },
      3000,
      "a pending ack with its next retry",
    );
    const user = res.body as unknown as UserLookup;
    assert.equal(user.directory?.name, "Camille Martin");
    assert.deepEqual(user.connection_counts, { ws: 1, sse: 0, poll: 0 });
    assert.equal(typeof user.node, "string");
    assert.equal(user.stream.epoch, welcome.epoch);
    assert.ok(user.stream.last_seq >= (welcome.seq as number));
    assert.equal(user.unread, 1);
    assert.equal(user.pending[0].id, id);
    assert.ok(Date.parse(user.pending[0].next_at!) > Date.now());
    assert.deepEqual(user.controls.map((c: { id: string }) => c.id), ["structure:univ-x"]);
    assert.deepEqual(user.disabled.map((d: { feature: string }) => d.feature), ["email"]);
    assert.deepEqual(user.last_deliveries.map((d: { id: string }) => d.id), [id]);
    assert.equal(user.actor?.status, "active");

    // A user never seen is no error: nothing to show.
    const nobody = await server.request("/v1/admin/users/nobody", { apiKey: SERVICE_KEY });
    assert.equal(nobody.status, 200);
    assert.equal(nobody.body.directory, null);
    assert.deepEqual(nobody.body.connections, []);
    assert.equal(nobody.body.actor, null);
  } finally {
    await server.close();
  }
});

Deno.test("disconnecting a user closes their connections, keeps their data and is audited", async () => {
  const server = await startServer();
  try {
    const { client } = await server.login("camille");
    await server.publish(envelope(["camille"]));
    await client.next((f) => f.type === "event");

    const res = await server.request("/v1/admin/users/camille/disconnect", {
      method: "POST",
      apiKey: SERVICE_KEY,
      body: { reason: "Session suspecte", by: "alice" },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { closed: 1 });
    assert.equal((await client.closed).code, 4001);

    const user = await server.request("/v1/admin/users/camille", { apiKey: SERVICE_KEY });
    assert.deepEqual(user.body.connections, []);
    assert.equal(user.body.unread, 1, "nothing is erased");
    const audit = await server.request("/v1/admin/controls/audit", { apiKey: SERVICE_KEY });
    const [entry] = audit.body.entries as Record<string, unknown>[];
    assert.equal(entry.action, "disconnect");
    assert.equal(entry.control_id, "user:camille");
    assert.equal(entry.reason, "Session suspecte");
    assert.deepEqual(entry.actor, { service: "test", by: "alice" });

    // Without a body, and for a user with no connection: nothing to close, still audited.
    const again = await fetch(`${server.origin}/v1/admin/users/camille/disconnect`, {
      method: "POST",
      headers: { "x-api-key": SERVICE_KEY },
    });
    assert.deepEqual(await again.json(), { closed: 0 });
    const log = await server.request("/v1/admin/controls/audit", { apiKey: SERVICE_KEY });
    assert.equal(log.body.count, 2);
  } finally {
    await server.close();
  }
});

Deno.test("the conversation lookup shows members, head and actor; an unknown one is a 404", async () => {
  const server = await startServer();
  try {
    const created = await server.request("/v1/conversations", {
      method: "POST",
      apiKey: SERVICE_KEY,
      body: {
        kind: "group",
        title: "Relecture",
        members: ["camille", "yanis"],
        owners: ["camille"],
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id = created.body.id as string;
    const { client } = await server.login("camille");
    client.send({ type: "msg.send", conversation: id, text: "Bonjour", client_id: "c1" });
    await client.next((f) => f.type === "msg");

    const res = await server.request(`/v1/admin/conversations/${id}`, { apiKey: SERVICE_KEY });
    assert.equal(res.status, 200);
    const found = res.body as unknown as ConversationLookup;
    assert.equal(found.member_count, 2);
    assert.deepEqual(found.members.map((m: { id: string }) => m.id), ["camille", "yanis"]);
    assert.equal(found.members[0].role, "owner");
    assert.equal(found.head?.seq, 1);
    assert.equal(found.actor?.status, "active");

    const unknown = await server.request("/v1/admin/conversations/nope", { apiKey: SERVICE_KEY });
    assert.equal(unknown.status, 404);
    assert.equal((unknown.body.error as { code: string }).code, "not_found");
  } finally {
    await server.close();
  }
});

Deno.test("the ops endpoints refuse bad input and keys without the admin scope", async () => {
  const server = await startServer();
  try {
    // Over the user-id rule's 256 characters (spaces or slashes are ids like any other).
    const bad = await server.request(`/v1/admin/users/${"x".repeat(257)}`, {
      apiKey: SERVICE_KEY,
    });
    assert.equal(bad.status, 400);
    assert.equal((bad.body.error as { code: string }).code, "validation_failed");
    const body = await server.request("/v1/admin/users/camille/disconnect", {
      method: "POST",
      apiKey: SERVICE_KEY,
      body: { reason: "x", extra: true },
    });
    assert.equal(body.status, 400);
    assert.match(JSON.stringify(body.body.error), /extra/);
    for (const path of ["/v1/admin/metrics/history", "/v1/admin/users/camille"]) {
      const res = await server.request(path, { apiKey: PUBLISH_KEY });
      assert.equal(res.status, 403, path);
    }
    const refused = await server.request("/v1/admin/users/camille/disconnect", {
      method: "POST",
      apiKey: PUBLISH_KEY,
      body: {},
    });
    assert.equal(refused.status, 403);
    const audit = await server.request("/v1/admin/controls/audit", { apiKey: SERVICE_KEY });
    assert.equal(audit.body.count, 0, "nothing refused is audited");
  } finally {
    await server.close();
  }
});

for (
  const [name, open] of [
    ["kv", async () => {
      const kv = await Deno.openKv(":memory:");
      return { store: createKvControlStore(kv), close: () => kv.close() };
    }],
    ["memory", () => Promise.resolve({ store: createMemoryControlStore(), close: () => {} })],
  ] as const
) {
  Deno.test(`${name} control store appends an action to the audit log without changing its version`, async () => {
    const { store, close } = await open();
    const version = await store.version();
    await store.appendAudit({
      id: crypto.randomUUID(),
      at: new Date().toISOString(),
      action: "disconnect",
      control_id: "user:camille",
      actor: { service: "ops" },
      before: null,
      after: null,
    });
    const [entry] = await store.listAudit({ limit: 10 });
    assert.equal(entry.action, "disconnect");
    assert.equal(await store.version(), version);
    close();
  });
}
