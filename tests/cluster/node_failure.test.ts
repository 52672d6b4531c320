/**
 * A node of a three-node cluster killed with SIGKILL in the middle of a 10,000-user
 * fan-out: its clients reconnect to the other nodes and resume, another node takes the
 * unfinished fan-out over, and every connected target ends with every durable item exactly
 * once, in order. Real processes, a real `redis-server`, sockets on loopback.
 */

import assert from "node:assert/strict";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import { connectRedisKv } from "../../src/store/redis_kv/redis_kv.ts";
import { bulkUserId, putBulkUsers } from "../_support/bulk_directory.ts";
import { eventually } from "../_support/eventually.ts";
import { type ChildServer, spawnServer } from "../_support/process.ts";
import { skipWithoutRedis, startRedis } from "../_support/redis.ts";
import { envelope } from "../_support/server.ts";
import type { Frame, TestClient } from "../_support/ws_client.ts";
import { login, publish } from "../node/_support.ts";

const AUDIENCE = 10_000;
const CONNECTED_PER_NODE = 10;

/** A connected user: their socket, and every item frame they got across reconnections. */
interface Watcher {
  user: string;
  node: number;
  client: TestClient;
  epoch: string;
  items: Frame[];
}

function itemsOf(frames: Frame[]): Frame[] {
  return frames.flatMap((f) => f.type === "batch" ? f.items : [f]).filter((f) =>
    f.type === "event" || f.type === "update"
  );
}

Deno.test({
  name: "SIGKILL of a node mid fan-out: every client resumes elsewhere with each item once",
  ignore: skipWithoutRedis(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    const prefix = `relais-test-${crypto.randomUUID()}`;
    const kv = connectRedisKv(redis.url, { prefix: `${prefix}:kv` });
    const nodes: ChildServer[] = [];
    const watchers: Watcher[] = [];
    try {
      await putBulkUsers(createKvDirectory(kv), AUDIENCE, "big");
      const env = { RELAIS_CLUSTER: "redis", REDIS_URL: redis.url, RELAIS_REDIS_PREFIX: prefix };
      for (const name of ["a", "b", "c"]) {
        nodes.push(await spawnServer({ ...env, RELAIS_NODE_ID: `node-${name}` }));
      }
      // Ten users on each node, spread over the audience.
      for (let n = 0; n < 3; n++) {
        for (let i = 0; i < CONNECTED_PER_NODE; i++) {
          const user = bulkUserId((n * CONNECTED_PER_NODE + i) * 331 % AUDIENCE);
          const { client, welcome } = await login(nodes[n], user);
          assert.ok(welcome, `${user} was not welcomed`);
          watchers.push({ user, node: n, client, epoch: welcome.epoch, items: [] });
        }
      }
      const users = watchers.map((w) => w.user);
      const before = await publish(nodes[1], envelope(users));
      const big = await publish(
        nodes[0],
        envelope([], { routing: { audience: { type: "GROUP", targets: ["big"] } } }),
      );
      await nodes[0].kill("SIGKILL");
      const store = createKvStore(kv, { recentWindowMs: 120_000 });
      assert.ok(
        (await store.unfinishedFanouts()).includes(big),
        "the fan-out finished before the kill: nothing was taken over",
      );

      // The killed node's clients reconnect to the others, resuming where they were.
      for (const w of watchers) {
        if (w.node !== 0) continue;
        await w.client.closed;
        w.items.push(...itemsOf(w.client.received));
        const after = Math.max(0, ...w.items.map((f) => f.seq as number));
        const again = nodes[1 + w.user.length % 2];
        const { client, welcome } = await login(again, w.user, { after, epoch: w.epoch });
        assert.ok(welcome, `${w.user} was not welcomed again`);
        w.client = client;
      }
      // Another node finishes the fan-out: the job is done, and an item later than it
      // reaches each client after it.
      await eventually(
        async () => !(await store.unfinishedFanouts()).includes(big),
        30_000,
        "the fan-out to be taken over",
      );
      const after = await publish(nodes[2], envelope(users));
      for (const w of watchers) {
        const isAfter = (f: Frame) => itemsOf([f]).some((i) => i.envelope.metadata.id === after);
        await w.client.next(isAfter, 10_000);
        w.items.push(...itemsOf(w.client.received));
        const ids = w.items.map((f) => f.envelope.metadata.id);
        assert.deepEqual(ids, [before, big, after], `${w.user} got ${ids.join(", ")}`);
        const seqs = w.items.map((f) => f.seq as number);
        assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), `${w.user}: out of order`);
      }
    } finally {
      await Promise.all(watchers.map((w) => w.client.close().catch(() => {})));
      for (const node of nodes) await node.kill("SIGTERM").catch(() => {});
      kv.close();
      await redis.stop();
    }
  },
});
