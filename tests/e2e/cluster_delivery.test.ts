/**
 * Three nodes in cluster mode on one Redis, in one process, each on its own loopback port
 * and its own bus connection: what is published on any node reaches the users connected
 * to every node, each item once, in the order of each user's stream; a client resumes on
 * another node exactly; an item whose announcement the bus lost still arrives, in order.
 */

import assert from "node:assert/strict";
import { ITEMS_TOPIC } from "../../src/cluster/cluster_delivery.ts";
import { createRedisBus } from "../../src/cluster/redis_bus.ts";
import { WAKE_TOPIC } from "../../src/cluster/wakeups.ts";
import { FIXTURE, itemFrames, putFixtureUsers } from "../_support/directory.ts";
import { ignoreRedis, redisUrl } from "../_support/redis_kv.ts";
import {
  envelope,
  eventually,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";
import type { Frame, TestClient } from "../_support/ws_client.ts";
import type { AppDeps } from "../../src/app/app.ts";

type Adapt = (deps: AppDeps) => AppDeps;

async function withNodes(
  run: (nodes: TestServer[]) => Promise<void>,
  adapt: (Adapt | undefined)[] = [],
  prefix = `relais-test-${crypto.randomUUID()}`,
) {
  const env = {
    RELAIS_CLUSTER: "redis",
    REDIS_URL: redisUrl(),
    RELAIS_REDIS_PREFIX: prefix,
    RELAIS_OUTBOX_DIR: await Deno.makeTempDir({ prefix: "relais-outbox-" }),
  };
  const nodes: TestServer[] = [];
  try {
    for (const name of ["a", "b", "c"]) {
      const how = adapt[nodes.length];
      nodes.push(
        await startServer({ ...env, RELAIS_NODE_ID: `node-${name}` }, how ? { adapt: how } : {}),
      );
    }
    await run(nodes);
  } finally {
    for (const node of nodes) await node.close();
    await Deno.remove(env.RELAIS_OUTBOX_DIR, { recursive: true });
  }
}

const idOf = (e: Record<string, unknown>) => (e.metadata as { id: string }).id;

/** The item frames of `client` up to the one with `id` (taken), which must come. */
async function itemsUntil(client: TestClient, id: string): Promise<Frame[]> {
  const isIt = (f: Frame) => itemFrames([f]).some((i) => i.envelope.metadata.id === id);
  const before = await client.before(isIt, (f) => f.type === "event" || f.type === "batch");
  return [...itemFrames(before), ...itemFrames([client.received.at(-1)!])];
}

/** Asserts seqs strictly increase, each one once. */
function assertOrdered(frames: Frame[], who: string) {
  const seqs = frames.map((f) => f.seq as number);
  for (let i = 1; i < seqs.length; i++) {
    assert.ok(seqs[i] > seqs[i - 1], `${who} got seqs out of order: ${seqs.join(",")}`);
  }
}

Deno.test({
  name: "a publish on any node reaches users connected to every node, once each",
  ignore: ignoreRedis,
  async fn() {
    await withNodes(async (nodes) => {
      const { camille, yanis, helene } = FIXTURE;
      const users = [camille, yanis, helene];
      const clients = await Promise.all(
        users.map(async (u, i) => (await nodes[i].login(u)).client),
      );
      for (const [i, node] of nodes.entries()) {
        const durable = envelope(users);
        const realtime = envelope(users, { metadata: { type: "REALTIME", operation: "update" } });
        assert.equal((await node.publish(durable)).status, 202);
        assert.equal((await node.publish(realtime)).status, 202);
        for (const [j, client] of clients.entries()) {
          const got = await itemsUntil(client, idOf(realtime));
          const ids = got.map((f) => f.envelope.metadata.id);
          assert.deepEqual(ids, [idOf(durable), idOf(realtime)], `${users[j]} from node ${i}`);
          assertOrdered(got, users[j]);
        }
      }
    });
  },
});

Deno.test({
  name: "a STRUCTURE audience published on one node reaches its members on the other nodes",
  ignore: ignoreRedis,
  async fn() {
    await withNodes(async (nodes) => {
      const { camille, yanis, emma } = FIXTURE;
      assert.ok((await putFixtureUsers(nodes[0].request, SERVICE_KEY)).every((s) => s === 201));
      const clients = [
        (await nodes[1].login(camille)).client,
        (await nodes[2].login(yanis)).client,
        (await nodes[2].login(emma)).client,
      ];
      const e = envelope([], {
        metadata: { type: "SYSTEM" },
        routing: { audience: { type: "STRUCTURE", targets: ["univ-exemple"] } },
      });
      const res = await nodes[0].publish(e);
      assert.equal(res.status, 202, JSON.stringify(res.body));
      for (const client of clients) {
        const got = await itemsUntil(client, idOf(e));
        assert.equal(got.length, 1);
      }
    });
  },
});

Deno.test({
  name: "publishes racing on three nodes to one user reach them in one gapless order",
  ignore: ignoreRedis,
  async fn() {
    await withNodes(async (nodes) => {
      const { client, welcome } = await nodes[1].login("lea");
      const start = welcome.seq as number;
      const sent = Array.from(
        { length: 30 },
        (_, i) => envelope(["lea"], { metadata: { topic: `t${i}` } }),
      );
      const answers = await Promise.all(sent.map((e, i) => nodes[i % 3].publish(e)));
      assert.ok(answers.every((a) => a.status === 202));
      const last = envelope(["lea"]);
      assert.equal((await nodes[2].publish(last)).status, 202);
      const got = await itemsUntil(client, idOf(last));
      assert.deepEqual(
        got.map((f) => f.seq),
        Array.from({ length: 31 }, (_, i) => start + i + 1),
      );
      assert.deepEqual(
        new Set(got.map((f) => f.envelope.metadata.id)),
        new Set([...sent, last].map(idOf)),
      );
    });
  },
});

Deno.test({
  name: "a client resumes on another node with every item it missed, recovered",
  ignore: ignoreRedis,
  async fn() {
    await withNodes(async (nodes) => {
      const first = await nodes[0].login("noe");
      const e1 = envelope(["noe"]);
      assert.equal((await nodes[0].publish(e1)).status, 202);
      const [seen] = await itemsUntil(first.client, idOf(e1));
      await first.client.close();
      const missed = [
        envelope(["noe"]),
        envelope(["noe"], { metadata: { type: "REALTIME", operation: "update" } }),
      ];
      for (const e of missed) assert.equal((await nodes[1].publish(e)).status, 202);
      const again = await nodes[2].login("noe", { after: seen.seq, epoch: first.welcome.epoch });
      assert.equal(again.welcome.recovered, true);
      assert.equal(again.welcome.epoch, first.welcome.epoch);
      const got = await itemsUntil(again.client, idOf(missed[1]));
      assert.deepEqual(got.map((f) => f.envelope.metadata.id), missed.map(idOf));
      assertOrdered(got, "noe");
    });
  },
});

/** Node a's bus loses its first announcement of live items. */
const losesFirstAnnouncement: Adapt = (deps) => {
  let lost = false;
  const bus = deps.bus;
  return {
    ...deps,
    bus: {
      ...bus,
      node: bus.node,
      publish(topic, data) {
        if (topic === ITEMS_TOPIC && !lost) {
          lost = true;
          return Promise.resolve();
        }
        return bus.publish(topic, data);
      },
      subscribe: (topic, handler) => bus.subscribe(topic, handler),
      nodes: () => bus.nodes(),
      ready: () => bus.ready(),
      close: () => bus.close(),
    },
  };
};

Deno.test({
  name: "an item whose announcement the bus lost is read from the store, in order",
  ignore: ignoreRedis,
  async fn() {
    await withNodes(async (nodes) => {
      const { client } = await nodes[1].login("ines");
      const lost = envelope(["ines"]);
      const next = envelope(["ines"]);
      assert.equal((await nodes[0].publish(lost)).status, 202);
      assert.equal((await nodes[0].publish(next)).status, 202);
      const got = await itemsUntil(client, idOf(next));
      assert.deepEqual(got.map((f) => f.envelope.metadata.id), [idOf(lost), idOf(next)]);
      assertOrdered(got, "ines");
    }, [losesFirstAnnouncement]);
  },
});

Deno.test({
  name: "an ack on one node ends the wait of the user's actors on the other nodes",
  ignore: ignoreRedis,
  async fn() {
    await withNodes(async (nodes) => {
      const onA = await nodes[0].login("emma");
      const onB = await nodes[1].login("emma");
      const e = envelope(["emma"], { routing: { retry: { ack_required: true, limit: 5 } } });
      assert.equal((await nodes[2].publish(e)).status, 202);
      await itemsUntil(onA.client, idOf(e));
      await itemsUntil(onB.client, idOf(e));
      const pendingOn = (node: TestServer) => {
        const snapshot = node.relais.registry.peek("user", "emma")?.getSnapshot() as
          | { context: { pending: Record<string, { id: string }> } }
          | undefined;
        return Object.values(snapshot?.context.pending ?? {}).map((p) => p.id);
      };
      assert.deepEqual(pendingOn(nodes[0]), [idOf(e)]);
      onB.client.send({ type: "ack", id: idOf(e) });
      await eventually(() => pendingOn(nodes[0]).length === 0, 5000, "node a to hear the ack");
      assert.deepEqual(pendingOn(nodes[1]), []);
    });
  },
});

Deno.test({
  name: "an operator's lookup on one node lists the user's connections on every node",
  ignore: ignoreRedis,
  async fn() {
    await withNodes(async (nodes) => {
      const onB = await nodes[1].login("lucas");
      const onC = await nodes[2].login("lucas");
      const lookup = () => nodes[0].request("/v1/admin/users/lucas", { apiKey: SERVICE_KEY });
      // Presence reaches node a over the bus: the lookup shows both once it has.
      const found = await eventually(
        async () => {
          const res = await lookup();
          return (res.body.connections as unknown[]).length === 2 && res;
        },
        5000,
        "node a to see both connections",
      );
      assert.equal(found.status, 200);
      const connections = found.body.connections as { id: string; node: string }[];
      assert.deepEqual(connections.map((c) => c.node).sort(), ["node-b", "node-c"]);
      assert.deepEqual(
        connections.map((c) => c.id).sort(),
        [onB.welcome.session, onC.welcome.session].sort(),
      );
      // A disconnect on node a closes both, on their nodes.
      const res = await nodes[0].request("/v1/admin/users/lucas/disconnect", {
        apiKey: SERVICE_KEY,
        body: { reason: "Support" },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.closed, 2);
      assert.equal((await onB.client.closed).code, 4001);
      assert.equal((await onC.client.closed).code, 4001);
    });
  },
});

Deno.test({
  name: "the ops charts asked of one node count the connections of every node",
  ignore: ignoreRedis,
  async fn() {
    await withNodes(async (nodes) => {
      await nodes[1].login("lucas");
      await nodes[2].login("ines");
      await nodes[2].login("ines");
      const history = async (node: TestServer) => {
        const res = await node.request("/v1/admin/metrics/history", { apiKey: SERVICE_KEY });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return res.body as { nodes: string[]; points: { ws: number }[] };
      };
      // Every node answers for the cluster: the one without connections included.
      for (const node of nodes) {
        const h = await history(node);
        assert.deepEqual([...h.nodes].sort(), ["node-a", "node-b", "node-c"]);
        assert.equal(h.points.at(-1)!.ws, 3);
      }
    });
  },
});

Deno.test({
  name: "a notification for email wakes the mailer once, from the node that accepted it",
  ignore: ignoreRedis,
  async fn() {
    const prefix = `relais-test-${crypto.randomUUID()}`;
    const watcher = createRedisBus(redisUrl(), { node: "watcher", prefix: `${prefix}:cluster` });
    const wakes: string[] = [];
    watcher.subscribe(WAKE_TOPIC, (m) => wakes.push(m.from));
    const marks: string[] = [];
    watcher.subscribe("mark", (m) => marks.push(m.data));
    try {
      await withNodes(
        async (nodes) => {
          const users = ["camille", "yanis"];
          const clients = [
            (await nodes[1].login(users[0])).client,
            (await nodes[2].login(users[1])).client,
          ];
          const e = envelope(users, { routing: { channels: ["inapp", "email"] } });
          assert.equal((await nodes[0].publish(e)).status, 202);
          for (const client of clients) await itemsUntil(client, idOf(e));
          // Barrier: what the nodes published before the mark is read before it.
          await watcher.publish("mark", "1");
          await eventually(() => marks.length === 1, 5000, "the mark");
          assert.ok(wakes.includes("node-a"), `wakes: ${wakes.join(", ")}`);
          assert.deepEqual(wakes.filter((n) => n !== "node-a"), []);
        },
        [],
        prefix,
      );
    } finally {
      await watcher.close();
    }
  },
});
