/**
 * The change-data ingest end to end: a real Redis stream, the real server, real sockets.
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import type { AppDeps } from "../../src/app/app.ts";
import { createIngest, INGEST_PUBLISHER, type IngestState } from "../../src/ingest/ingest.ts";
import { createRedisChangeStream } from "../../src/ingest/redis_change_stream.ts";
import { parseRules } from "../../src/ingest/rules.ts";
import { ACTIVITY_RULE, CHANGE as change } from "../_support/ingest.ts";
import { skipWithoutRedis, startRedis, type TestRedis } from "../_support/redis.ts";
import {
  envelope,
  eventually,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";
import type { Frame } from "../_support/ws_client.ts";

const ignore = skipWithoutRedis();
const OWNER_RULE = {
  table: "public.activity",
  type: "NOTIFICATION",
  source: "activities",
  topic: "activity.changed",
  key: ["id"],
  audience: { type: "USER", column: "owner_id" },
  columns: ["id", "status"],
};

/** A change of activity `id` at log position `lsn`, with `after` patched. */
function activityChange(lsn: number, id: number, after: Record<string, unknown> = {}) {
  return {
    ...change,
    before: { ...change.before, id },
    after: { ...change.after, id, ...after },
    source: { ...change.source, lsn },
  };
}

/** A Redis, a stream of its own, a rules file and a client to write the stream. */
async function setup(rules: unknown[]) {
  const redis: TestRedis = await startRedis();
  const stream = `test-ingest-${crypto.randomUUID()}`;
  const rulesPath = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(rulesPath, JSON.stringify({ rules }));
  const client = new Redis(redis.url);
  return {
    url: redis.url,
    stream,
    rulesPath,
    client,
    env: (more: Record<string, string> = {}) => ({
      REDIS_URL: redis.url,
      RELAIS_INGEST_STREAM: stream,
      RELAIS_INGEST_RULES: rulesPath,
      RELAIS_NODE_ID: "node-a",
      ...more,
    }),
    add: (data: unknown) =>
      client.xadd(
        stream,
        "*",
        "data",
        typeof data === "string" ? data : JSON.stringify(data),
      ) as Promise<string>,
    async close() {
      await client.del(stream, `${stream}:dead`);
      client.disconnect();
      await Deno.remove(rulesPath);
      await redis.stop();
    },
  };
}

/** Runs `fn` with a stream set up for `rules` and a server ingesting it; closes both. */
async function withIngest(
  rules: unknown[],
  fn: (s: Awaited<ReturnType<typeof setup>>, server: TestServer) => Promise<void>,
) {
  const s = await setup(rules);
  const server = await startServer(s.env());
  try {
    await fn(s, server);
  } finally {
    await server.close();
    await s.close();
  }
}

/** Sets a SYSTEM kill switch of `features` through the admin API. */
async function switchOff(server: TestServer, features: string[], reason: string) {
  const put = await server.request("/v1/admin/controls", {
    method: "PUT",
    apiKey: SERVICE_KEY,
    body: { scope: { type: "SYSTEM" }, features, reason },
  });
  assert.ok(put.status === 200 || put.status === 201, JSON.stringify(put.body));
}

/** Waits until the server's ingest has created its group and reads. */
async function ingestRunning(server: TestServer) {
  await eventually(async () => (await server.relais.ingest!.state()).status === "running");
}

async function putUser(server: TestServer, id: string, formations: string[]) {
  const put = await server.request(`/v1/users/${id}`, {
    method: "PUT",
    apiKey: SERVICE_KEY,
    body: { roles: [], structures: [], formations, groups: [] },
  });
  assert.ok(put.status === 201 || put.status === 200, JSON.stringify(put.body));
}

const isActivity = (f: Frame) =>
  f.type === "event" && f.envelope?.metadata?.source === "activities";

Deno.test({
  name: "a Debezium change reaches the users its rule names with only the allowed columns",
  ignore,
  async fn() {
    await withIngest([ACTIVITY_RULE], async (s, server) => {
      await putUser(server, "alice", ["licence-info"]);
      await putUser(server, "bob", ["licence-info"]);
      await putUser(server, "carol", ["master-info"]);
      const alice = (await server.login("alice")).client;
      const bob = (await server.login("bob")).client;
      const carol = (await server.login("carol")).client;
      await ingestRunning(server);

      await s.add(change);

      for (const client of [alice, bob]) {
        const frame = await client.next(isActivity);
        const { metadata, payload } = frame.envelope;
        assert.equal(metadata.type, "REALTIME");
        assert.equal(metadata.operation, "update");
        assert.equal(metadata.topic, "activity.changed");
        assert.equal(metadata.collapse_key, "activity:42");
        assert.deepEqual(payload, {
          before: { id: 42, title: "Projet web — sprint 2", status: "DRAFT" },
          after: { id: 42, title: "Projet web — sprint 2", status: "PUBLISHED" },
        });
        assert.equal(frame.envelope.routing, undefined);
      }
      // Carol is outside the audience: a later event to her comes with nothing before it.
      const barrier = envelope(["carol"], { metadata: { type: "REALTIME", source: "barrier" } });
      assert.equal((await server.publish(barrier)).status, 202);
      const early = await carol.before(
        (f) => f.type === "event" && f.envelope.metadata.source === "barrier",
        isActivity,
      );
      assert.deepEqual(early, []);
      await eventually(async () => (await server.relais.ingest!.state()).pending === 0);
    });
  },
});

Deno.test({
  name:
    "an entry read twice, by a consumer stopped before its XACK then by another, is delivered once",
  ignore,
  async fn() {
    const s = await setup([ACTIVITY_RULE]);
    // Node A publishes but never gets to ack: it stands for a node killed before XACK.
    const server = await startServer(s.env({ RELAIS_INGEST_CLAIM_IDLE_MS: "60000" }), {
      adapt(deps: AppDeps) {
        const stream = deps.ingest!.stream;
        const ack = () => Promise.reject(new Error("Simulated crash before XACK"));
        return { ...deps, ingest: { ...deps.ingest!, stream: { ...stream, ack } } };
      },
    });
    const rules = parseRules(await Deno.readTextFile(s.rulesPath));
    const nodeB = createIngest({
      stream: createRedisChangeStream({
        url: s.url,
        stream: s.stream,
        group: "relais",
        consumer: "node-b",
      }),
      group: "relais",
      rules,
      claimIdleMs: 200,
      publish: (e) => server.relais.publisher.publish(e, { publishedBy: INGEST_PUBLISHER }),
      onError: () => {},
    });
    try {
      await putUser(server, "alice", ["licence-info"]);
      const alice = (await server.login("alice")).client;
      await ingestRunning(server);

      await s.add(change);
      await alice.next(isActivity);
      await eventually(async () => (await server.relais.ingest!.state()).counts.errors > 0);
      await server.relais.ingest!.stop();
      assert.equal(
        Number((await s.client.xpending(s.stream, "relais") as unknown[])[0]),
        1,
        "the entry is still pending on node A",
      );

      // Node B claims it once it has been idle long enough, and replays the same id.
      nodeB.start();
      await eventually(async () => (await nodeB.state()).counts.entries.replayed === 1);
      const state = await nodeB.state();
      assert.equal(state.pending, 0);
      assert.equal(state.counts.claimed, 1);
      assert.equal(state.counts.entries.published, 0);

      // A later change is the barrier: the first one did not come again before it.
      await s.add(activityChange(change.source.lsn + 1000, 42, { status: "ARCHIVED" }));
      const again = await alice.before(
        (f) => isActivity(f) && f.envelope.payload.after.status === "ARCHIVED",
        (f) => isActivity(f) && f.envelope.payload.after.status === "PUBLISHED",
      );
      assert.deepEqual(again, []);
    } finally {
      await nodeB.stop();
      await server.close();
      await s.close();
    }
  },
});

Deno.test({
  name: "malformed entries go to the dead-letter stream with their reason while good ones flow",
  ignore,
  async fn() {
    await withIngest([ACTIVITY_RULE], async (s, server) => {
      await putUser(server, "alice", ["licence-info"]);
      const alice = (await server.login("alice")).client;
      await ingestRunning(server);

      const { id: _, ...noKey } = change.after;
      await s.add(activityChange(1000, 1));
      const bad = [
        await s.add("{not json"),
        await s.client.xadd(s.stream, "*", "payload", "{}"),
        await s.add({ ...change, source: { ...change.source, table: "skill" } }),
        await s.add({ ...change, after: noKey }),
        await s.add(activityChange(1003, 3, { program_id: null })),
        await s.add(activityChange(1004, 4, { title: "x".repeat(1_000_000) })),
      ];
      await s.add(activityChange(1005, 5));

      const got = [await alice.next(isActivity), await alice.next(isActivity)];
      assert.deepEqual(got.map((f) => f.envelope.payload.after.id), [1, 5]);

      const reasons = [
        "invalid_json",
        "no_data",
        "no_rule",
        "missing_key",
        "empty_audience",
        "payload_too_large",
      ];
      const dead = await eventually(async () => {
        const entries = await s.client.xrange(`${s.stream}:dead`, "-", "+");
        return entries.length === reasons.length ? entries : undefined;
      });
      assert.deepEqual(
        dead.map(([, fields]) => [fields[fields.indexOf("entry") + 1], fields[1]]),
        bad.map((id, i) => [id, reasons[i]]),
      );
      // The original entry is kept: its data, or its fields when it has no data.
      assert.equal(dead[0][1][dead[0][1].indexOf("data") + 1], "{not json");
      assert.equal(dead[1][1][dead[1][1].indexOf("fields") + 1], '[["payload","{}"]]');

      await eventually(async () => (await server.relais.ingest!.state()).pending === 0);
      const state = await server.request("/v1/admin/ingest", { apiKey: SERVICE_KEY });
      assert.equal(state.status, 200);
      const body = state.body as unknown as IngestState;
      assert.equal(body.enabled, true);
      assert.equal(body.stream, s.stream);
      assert.equal(body.consumer, "node-a");
      assert.equal(body.pending, 0);
      assert.equal(body.lag, 0);
      assert.equal(body.counts.entries.published, 2);
      assert.equal(body.counts.entries.dead, 6);
      assert.equal(body.counts.dead_letters.no_rule, 1);
      assert.deepEqual(
        body.dead_letters.map((d: { reason: string }) => d.reason),
        [
          ...reasons,
        ].reverse(),
      );
      assert.ok(body.dead_letters.every((d) => (d.data ?? "").length <= 2048));

      const metrics = await (await fetch(`${server.origin}/metrics`)).text();
      assert.match(metrics, /relais_ingest_dead_letters_total\{reason="no_rule"\} 1/);
      assert.match(metrics, /relais_ingest_entries_total\{outcome="published"\} 2/);

      const refused = await server.request("/v1/admin/ingest", {
        apiKey: "test_publish_key_0123456789abcdef",
      });
      assert.equal(refused.status, 403);
    });
  },
});

Deno.test({
  name:
    "a restarted node resumes from the group position: nothing acked again, nothing unacked lost",
  ignore,
  async fn() {
    const s = await setup([OWNER_RULE]);
    const owner = change.after.owner_id;
    let failAck: string | undefined;
    const first = await startServer(s.env({ RELAIS_INGEST_CLAIM_IDLE_MS: "60000" }), {
      adapt(deps: AppDeps) {
        const stream = deps.ingest!.stream;
        const ack = (ids: readonly string[]) =>
          failAck && ids.includes(failAck)
            ? Promise.reject(new Error("Simulated crash before XACK"))
            : stream.ack(ids);
        return { ...deps, ingest: { ...deps.ingest!, stream: { ...stream, ack } } };
      },
    });
    let second: TestServer | undefined;
    try {
      await ingestRunning(first);
      await s.add(activityChange(100, 1));
      await eventually(async () => {
        const state = await first.relais.ingest!.state();
        return state.counts.entries.published === 1 && state.pending === 0;
      });
      failAck = await s.add(activityChange(200, 2));
      await eventually(async () => (await first.relais.ingest!.state()).counts.errors > 0);
      await first.close();

      const third = await s.add(activityChange(300, 3));
      // A new process with a new (empty) store: only the group tells what was done.
      second = await startServer(s.env());
      const server = second;
      await eventually(async () => {
        const state = await server.relais.ingest!.state();
        return state.pending === 0 && state.lag === 0 && state.last_id === third;
      });
      const inbox = await server.request("/v1/me/notifications?after=0", {
        bearer: await server.token(owner),
      });
      const items = inbox.body.items as { payload: { after: { id: number } } }[];
      assert.deepEqual(items.map((item) => item.payload.after.id), [2, 3]);
    } finally {
      await second?.close();
      await s.close();
    }
  },
});

Deno.test({
  name: "the ingest admin route says when the ingest is off",
  async fn() {
    const server = await startServer();
    try {
      const state = await server.request("/v1/admin/ingest", { apiKey: SERVICE_KEY });
      assert.equal(state.status, 200);
      assert.deepEqual(state.body, { enabled: false });
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "the ingest backs off when its Redis connections drop and resumes without loss",
  ignore,
  async fn() {
    const s = await setup([ACTIVITY_RULE]);
    const node = `node-${crypto.randomUUID()}`;
    const server = await startServer(s.env({ RELAIS_NODE_ID: node }));
    try {
      await putUser(server, "alice", ["licence-info"]);
      const alice = (await server.login("alice")).client;
      await ingestRunning(server);
      await s.add(change);
      await alice.next(isActivity);

      // Cut the ingest's connections (its blocking read included), as a Redis restart would.
      const list = String(await s.client.call("CLIENT", "LIST"));
      const ids = list.split("\n").filter((line) => line.includes(`name=relais-ingest-${node}`))
        .map((line) => /(?:^|\s)id=(\d+)/.exec(line)![1]);
      assert.equal(ids.length, 2);
      for (const id of ids) await s.client.call("CLIENT", "KILL", "ID", id);
      await s.add(activityChange(change.source.lsn + 1000, 42, { status: "ARCHIVED" }));

      const next = await alice.next(isActivity, 10_000);
      assert.equal(next.envelope.payload.after.status, "ARCHIVED");
      const state = await server.relais.ingest!.state();
      assert.ok(state.counts.errors > 0, "the dropped connection was noticed");
      await eventually(async () => (await server.relais.ingest!.state()).pending === 0);
    } finally {
      await server.close();
      await s.close();
    }
  },
});

Deno.test({
  name: "a system-wide kill switch of the events' feature drops ingested changes and acks them",
  ignore,
  async fn() {
    await withIngest([ACTIVITY_RULE], async (s, server) => {
      await ingestRunning(server);
      await switchOff(server, ["realtime"], "Incident");
      await s.add(change);
      await eventually(async () => {
        const state = await server.relais.ingest!.state();
        return state.counts.entries.switched_off === 1 && state.pending === 0;
      });
      const state = await server.relais.ingest!.state();
      assert.equal(state.counts.entries.published, 0);
      assert.equal(state.counts.events, 0);
    });
  },
});

Deno.test({
  name: "the system-wide ingest switch pauses the reading: changes wait in the stream, then flow",
  ignore,
  async fn() {
    await withIngest([ACTIVITY_RULE], async (s, server) => {
      await ingestRunning(server);
      await putUser(server, "alice", ["licence-info"]);
      const { client } = await server.login("alice");
      await switchOff(server, ["ingest"], "Replaying the CDC");
      await eventually(async () => (await server.relais.ingest!.state()).status === "paused");
      await s.add(activityChange(900, 7, { title: "pendant la pause" }));
      // The entry waits unread in the stream: the group has not taken it.
      const groups = await s.client.xinfo("GROUPS", s.stream) as unknown[][];
      const lag = Number(groups[0][groups[0].indexOf("lag") + 1]);
      assert.equal(lag, 1);
      assert.equal((await server.relais.ingest!.state()).status, "paused");
      const cleared = await server.request("/v1/admin/controls/system", {
        method: "DELETE",
        apiKey: SERVICE_KEY,
      });
      assert.ok(cleared.status === 200 || cleared.status === 204, JSON.stringify(cleared.body));
      const event = await client.next(isActivity);
      assert.equal(event.envelope.payload.after.title, "pendant la pause");
      assert.equal((await server.relais.ingest!.state()).counts.entries.published, 1);
    });
  },
});

Deno.test({
  name: "an ingest switch narrower than SYSTEM is refused, naming the field",
  ignore,
  async fn() {
    const server = await startServer();
    try {
      const res = await server.request("/v1/admin/controls", {
        method: "PUT",
        apiKey: SERVICE_KEY,
        body: { scope: { type: "USER", id: "alice" }, features: ["ingest"], reason: "No" },
      });
      assert.equal(res.status, 400);
      const error = res.body.error as { code: string; details: { path: string }[] };
      assert.equal(error.code, "validation_failed");
      assert.equal(error.details[0].path, "features");
    } finally {
      await server.close();
    }
  },
});
