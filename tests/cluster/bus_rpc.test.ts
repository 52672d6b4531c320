/**
 * Request and response over the Redis bus between nodes in one process: a call reaches
 * the node it names and its answer the caller; errors keep their code; a node that does
 * not answer, or left, fails the call with a clear error; hostile messages hurt nothing.
 */

import assert from "node:assert/strict";
import { createBusRpc, NodeUnreachableError } from "../../src/cluster/bus_rpc.ts";
import { AppError } from "../../src/errors.ts";
import { ignoreRedis } from "../_support/redis_kv.ts";
import { startNodes, type TestNode } from "./_nodes.ts";

function test(name: string, fn: () => Promise<void>) {
  Deno.test({
    name: `bus rpc: ${name}`,
    ignore: ignoreRedis,
    sanitizeResources: false,
    sanitizeOps: false,
    fn,
  });
}

/** Nodes with an RPC layer each, whose `whoami` answers the node and echoes its args. */
async function rpcNodes(ids: string[], livenessMs = 1000) {
  const cluster = await startNodes(ids, { ttlMs: 10_000, heartbeatMs: 200 });
  const rpcs = cluster.nodes.map((n: TestNode) => {
    const rpc = createBusRpc(n.bus, { timeoutMs: 5000, livenessMs, onError: n.onError });
    rpc.handle("whoami", (args) => Promise.resolve({ node: n.id, args }));
    return rpc;
  });
  return {
    ...cluster,
    rpcs,
    async close() {
      for (const rpc of rpcs) rpc.close();
      await cluster.close();
    },
  };
}

test("a call reaches the node it names, and the answer comes back to the caller", async () => {
  const { rpcs: [a, b, c], close } = await rpcNodes(["node-a", "node-b", "node-c"]);
  try {
    const answers = await Promise.all([
      a.call("node-b", "whoami", { n: 1 }),
      a.call("node-c", "whoami", { n: 2 }),
      b.call("node-a", "whoami", [3]),
      c.call("node-c", "whoami", "self"),
    ]);
    assert.deepEqual(answers, [
      { node: "node-b", args: { n: 1 } },
      { node: "node-c", args: { n: 2 } },
      { node: "node-a", args: [3] },
      { node: "node-c", args: "self" },
    ]);
  } finally {
    await close();
  }
});

test("an AppError thrown by the remote handler keeps its code, message and details", async () => {
  const { rpcs: [a, b], nodes, close } = await rpcNodes(["node-a", "node-b"]);
  try {
    b.handle("find", (args) => {
      throw new AppError("not_found", `Unknown conversation "${String(args)}"`, {
        details: [{ path: "id", message: "unknown" }],
      });
    });
    b.handle("guard", () => Promise.reject(new AppError("forbidden", "Not yours")));
    b.handle("crash", () => Promise.reject(new TypeError("x is undefined")));

    const notFound = await a.call("node-b", "find", "c9").catch((e) => e);
    assert.ok(notFound instanceof AppError);
    assert.equal(notFound.code, "not_found");
    assert.equal(notFound.message, 'Unknown conversation "c9"');
    assert.deepEqual(notFound.details, [{ path: "id", message: "unknown" }]);

    const forbidden = await a.call("node-b", "guard", {}).catch((e) => e);
    assert.ok(forbidden instanceof AppError);
    assert.equal(forbidden.code, "forbidden");

    const crash = await a.call("node-b", "crash", {}).catch((e) => e);
    assert.ok(crash instanceof Error && !(crash instanceof AppError));
    assert.equal(crash.message, 'Call "crash" on node "node-b" failed: x is undefined');
    // The node that handled it logged what was not an AppError.
    assert.ok(nodes[1].errors.some((e) => e.message.includes('Call "crash"')));
  } finally {
    await close();
  }
});

test("a call to a node that does not answer times out with a clear error", async () => {
  const { rpcs: [a, mute], close } = await rpcNodes(["node-a", "node-mute"]);
  try {
    // node-mute is alive (its heartbeats go on) but answers nothing any more.
    mute.close();
    const started = Date.now();
    const error = await a.call("node-mute", "whoami", {}, { timeoutMs: 300 }).catch((e) => e);
    assert.ok(error instanceof NodeUnreachableError);
    assert.equal(error.code, "unavailable");
    assert.equal(error.node, "node-mute");
    assert.equal(error.message, 'Node "node-mute" did not answer "whoami" within 300 ms');
    assert.ok(Date.now() - started >= 300);
  } finally {
    await close();
  }
});

test("a call to a node that left the cluster fails without waiting for its timeout", async () => {
  const { rpcs: [a], nodes, close } = await rpcNodes(["node-a", "node-b"], 100);
  try {
    await nodes[1].die();
    const error = await a.call("node-b", "whoami", {}, { timeoutMs: 60_000 }).catch((e) => e);
    assert.ok(error instanceof NodeUnreachableError);
    assert.equal(error.message, 'Node "node-b" left the cluster before answering "whoami"');
  } finally {
    await close();
  }
});

test("malformed calls and prototype names are refused; the node keeps answering", async () => {
  const { rpcs: [a], nodes, close } = await rpcNodes(["node-a", "node-b"]);
  try {
    const bus = nodes[0].bus;
    for (
      const data of [
        "not json",
        "[1,2]",
        "null",
        '{"method":"whoami"}',
        '{"id":{},"method":"whoami"}',
        '{"id":"x","method":42}',
      ]
    ) {
      await bus.publish("rpc:req:node-b", data);
    }
    // An answer nobody asked for is dropped.
    await bus.publish("rpc:res:node-a", '{"id":"nobody","ok":true,"value":1}');
    for (const method of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const error = await a.call("node-b", method, {}).catch((e) => e);
      assert.ok(error instanceof Error);
      assert.equal(
        error.message,
        `Call "${method}" on node "node-b" failed: Unknown method "${method}"`,
      );
    }
    // Barrier: a later call is answered, so the bad messages before it were handled.
    assert.deepEqual(await a.call("node-b", "whoami", 1), { node: "node-b", args: 1 });
    assert.equal(
      nodes[1].errors.filter((e) => e.message === "A malformed call came over the bus").length,
      6,
    );
  } finally {
    await close();
  }
});

test("a closed RPC layer fails its waiting calls and refuses new ones", async () => {
  const { rpcs: [a], nodes, close } = await rpcNodes(["node-a", "node-b"]);
  try {
    const { promise: entered, resolve: enter } = Promise.withResolvers<void>();
    const never = new Promise<never>(() => {});
    const b2 = createBusRpc(nodes[1].bus, { prefix: "slow" });
    const a2 = createBusRpc(nodes[0].bus, { prefix: "slow" });
    b2.handle("hang", () => {
      enter();
      return never;
    });
    const waiting = a2.call("node-b", "hang", {}).catch((e: Error) => e);
    await entered;
    a2.close();
    b2.close();
    assert.equal((await waiting as Error).message, "The bus RPC is closed");
    await assert.rejects(() => a2.call("node-b", "hang", {}), /The bus RPC is closed/);
    // The default layer on the same bus is untouched.
    assert.deepEqual(await a.call("node-b", "whoami", 2), { node: "node-b", args: 2 });
  } finally {
    await close();
  }
});
