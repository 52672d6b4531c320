/**
 * The cluster bus contract, on the in-process bus and on Redis (a real `redis-server`),
 * and what only the Redis bus does: several nodes, resuming after a lost connection,
 * membership by heartbeats.
 */

import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { type Bus, type BusMessage, createLocalBus } from "../../src/cluster/bus.ts";
import { createRedisBus } from "../../src/cluster/redis_bus.ts";
import { eventually } from "../_support/eventually.ts";
import { skipWithoutRedis, startRedis, type TestRedis } from "../_support/redis.ts";

const ignore = skipWithoutRedis();

/** Collects the messages of `topic` on `bus`; `next(n)` waits until `n` have come. */
function collect(bus: Bus, topic: string) {
  const got: BusMessage[] = [];
  const stop = bus.subscribe(topic, (m) => got.push(m));
  return {
    got,
    stop,
    next: (n: number) => eventually(() => got.length >= n, 5000, `${n} messages on "${topic}"`),
  };
}

let redis: TestRedis | undefined;
async function redisUrl(): Promise<string> {
  redis ??= await startRedis();
  return redis.url;
}

const adapters: { name: string; ignore: boolean; open(): Promise<Bus> }[] = [
  { name: "local bus", ignore: false, open: () => Promise.resolve(createLocalBus("n1")) },
  {
    name: "redis bus",
    ignore,
    open: async () =>
      createRedisBus(await redisUrl(), { node: "n1", prefix: `t-${crypto.randomUUID()}` }),
  },
];

for (const adapter of adapters) {
  Deno.test({
    name:
      `${adapter.name}: a message reaches the topic's subscribers, its publisher's too, in order`,
    ignore: adapter.ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const bus = await adapter.open();
      try {
        const a = collect(bus, "a");
        const b = collect(bus, "b");
        for (let i = 0; i < 50; i++) await bus.publish("a", `m${i}`);
        await bus.publish("b", "barrier");
        await b.next(1);
        await a.next(50);
        assert.deepEqual(a.got.map((m) => m.data), Array.from({ length: 50 }, (_, i) => `m${i}`));
        assert.ok(a.got.every((m) => m.topic === "a" && m.from === "n1"));
        assert.deepEqual(b.got.map((m) => m.data), ["barrier"]);
      } finally {
        await bus.close();
      }
    },
  });

  Deno.test({
    name:
      `${adapter.name}: an unsubscribed handler gets nothing more; a throwing one stops no other`,
    ignore: adapter.ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const bus = await adapter.open();
      try {
        const gone = collect(bus, "t");
        bus.subscribe("t", () => {
          throw new Error("a broken handler");
        });
        const kept = collect(bus, "t");
        await bus.publish("t", "one");
        await kept.next(1);
        await gone.next(1);
        gone.stop();
        await bus.publish("t", "two");
        // Barrier: the handler still subscribed got the second message.
        await kept.next(2);
        assert.deepEqual(gone.got.map((m) => m.data), ["one"]);
        assert.deepEqual(kept.got.map((m) => m.data), ["one", "two"]);
      } finally {
        await bus.close();
      }
    },
  });

  Deno.test({
    name: `${adapter.name}: a closed bus refuses to publish, and lists its node while open`,
    ignore: adapter.ignore,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const bus = await adapter.open();
      await eventually(async () => (await bus.nodes()).some((n) => n.id === "n1"));
      await bus.close();
      await assert.rejects(() => bus.publish("t", "late"), /closed/);
    },
  });
}

/** Two nodes on one Redis under a prefix of their own. */
async function twoNodes(heartbeatMs = 1000) {
  const url = await redisUrl();
  const prefix = `t-${crypto.randomUUID()}`;
  const a = createRedisBus(url, { node: "node-a", prefix, heartbeatMs });
  const b = createRedisBus(url, { node: "node-b", prefix, heartbeatMs });
  // A node reads what is published once its start is pinned: both are, before any publish
  // (on a loaded machine node b's first read came after node a's first message).
  await Promise.all([a.ready(), b.ready()]);
  return { url, prefix, a, b, close: () => Promise.all([a.close(), b.close()]) };
}

Deno.test({
  name: "redis bus: a message published on one node reaches every node once",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { a, b, close } = await twoNodes();
    try {
      const onA = collect(a, "frames");
      const onB = collect(b, "frames");
      // Both read before anything is published: each publishes to itself first.
      const selfA = collect(a, "hello");
      const selfB = collect(b, "hello");
      await a.publish("hello", "a");
      await b.publish("hello", "b");
      await selfA.next(2);
      await selfB.next(2);
      await a.publish("frames", "for everyone");
      await b.publish("frames", "barrier");
      await onA.next(2);
      await onB.next(2);
      assert.deepEqual(onB.got.map((m) => [m.from, m.data]), [
        ["node-a", "for everyone"],
        ["node-b", "barrier"],
      ]);
      assert.deepEqual(onA.got.map((m) => m.data), ["for everyone", "barrier"]);
      assert.deepEqual((await a.nodes()).map((n) => n.id), ["node-a", "node-b"]);
    } finally {
      await close();
    }
  },
});

Deno.test({
  name:
    "redis bus: a node that lost its connection gets what was published meanwhile, once, in order",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { url, a, b, close } = await twoNodes();
    const admin = new Redis(url);
    try {
      const onB = collect(b, "t");
      await a.publish("t", "before");
      await onB.next(1);
      // Cut node b's reading connection; Redis itself stays up.
      const clients = String(await admin.client("LIST")).split("\n");
      const line = clients.find((l) => l.includes("name=relais-bus-reader:node-b"));
      assert.ok(line, "node b's reader is connected");
      const id = /\bid=(\d+)/.exec(line!)![1];
      await admin.client("KILL", "ID", id);
      for (const m of ["during 1", "during 2", "during 3"]) await a.publish("t", m);
      await onB.next(4);
      await a.publish("t", "after");
      await onB.next(5);
      assert.deepEqual(onB.got.map((m) => m.data), [
        "before",
        "during 1",
        "during 2",
        "during 3",
        "after",
      ]);
    } finally {
      admin.disconnect();
      await close();
    }
  },
});

Deno.test({
  name: "redis bus: a node whose heartbeat stopped leaves the membership; a closed one at once",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { url, prefix, a, b, close } = await twoNodes(100);
    const admin = new Redis(url);
    try {
      // A node that died three intervals ago without saying so.
      await admin.hset(`{${prefix}}:bus:nodes`, "node-dead", String(Date.now() - 1000));
      await eventually(async () => (await a.nodes()).length === 2);
      assert.deepEqual((await a.nodes()).map((n) => n.id), ["node-a", "node-b"]);
      await b.close();
      assert.deepEqual((await a.nodes()).map((n) => n.id), ["node-a"]);
    } finally {
      admin.disconnect();
      await close();
    }
  },
});

Deno.test({
  name: "redis bus: the test Redis stops",
  ignore,
  async fn() {
    await redis?.stop();
    redis = undefined;
  },
});
