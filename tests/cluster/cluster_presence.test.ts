/**
 * Cluster-wide presence over the Redis bus (a real `redis-server`): a user connected to
 * one node is online for every node; a node that starts learns who the others hold; a
 * node whose heartbeat stops takes its users with it.
 */

import assert from "node:assert/strict";
import { createClusterPresence } from "../../src/cluster/cluster_presence.ts";
import { createRedisBus } from "../../src/cluster/redis_bus.ts";
import { eventually } from "../_support/eventually.ts";
import { skipWithoutRedis, startRedis } from "../_support/redis.ts";

const ignore = skipWithoutRedis();

Deno.test({
  name: "presence is cluster-wide: changes, a late node's sync, and a dead node's users",
  ignore,
  async fn() {
    const redis = await startRedis();
    const prefix = `t-${crypto.randomUUID()}`;
    const open = (node: string) => createRedisBus(redis.url, { node, prefix, heartbeatMs: 100 });
    const errors: unknown[] = [];
    const onError = (_: string, e: unknown) => errors.push(e);
    const busA = open("a");
    const busB = open("b");
    const heldByA = new Set<string>();
    const a = createClusterPresence({ bus: busA, connected: () => heldByA, onError });
    const b = createClusterPresence({ bus: busB, connected: () => [], onError, sweepMs: 100 });
    let busC: ReturnType<typeof open> | undefined;
    let c: ReturnType<typeof createClusterPresence> | undefined;
    try {
      // A user whose name is a property of every object is a user like any other.
      for (const user of ["camille", "constructor"]) {
        heldByA.add(user);
        a.local(user, true);
      }
      await eventually(() => b.isOnline("camille") && b.isOnline("constructor"), 5000, "b sees");
      assert.deepEqual(b.nodesOf("camille"), ["a"]);
      assert.equal(b.isOnline("yanis"), false);

      // Closed and opened again in one turn: still online.
      a.local("camille", false);
      a.local("camille", true);
      heldByA.delete("constructor");
      a.local("constructor", false);
      await eventually(() => !b.isOnline("constructor"), 5000, "b sees constructor leave");
      assert.equal(b.isOnline("camille"), true);

      // A node that starts later asks, and learns who a holds.
      busC = open("c");
      c = createClusterPresence({ bus: busC, connected: () => [], onError });
      await eventually(() => c!.isOnline("camille"), 5000, "c syncs");

      // a leaves the membership: b forgets its users.
      a.stop();
      await busA.close();
      await eventually(() => !b.isOnline("camille"), 5000, "b forgets a's users");
      assert.deepEqual(errors, []);
    } finally {
      a.stop();
      b.stop();
      c?.stop();
      await Promise.all([busA.close(), busB.close(), busC?.close()]);
      await redis.stop();
    }
  },
});
