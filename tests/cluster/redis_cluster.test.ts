/**
 * relais's Redis pieces on a Redis Cluster of three masters (`redis+cluster://`): the
 * Redis KV (its scripts whichever master holds its slot, and the store contract on it),
 * the cluster bus, the Redis rate limiter (`@upstash/ratelimit`'s scripts by `EVALSHA`),
 * the ingest's change stream (`XREADGROUP` on a blocking connection), and a whole app in
 * cluster mode that delivers over WebSocket and resumes after a reconnection.
 */

import assert from "node:assert/strict";
import { type Cluster, Redis } from "ioredis";
import { connectRedis } from "../../src/cluster/redis_connect.ts";
import type { BusMessage } from "../../src/cluster/bus.ts";
import { createRedisBus } from "../../src/cluster/redis_bus.ts";
import { createRedisChangeStream } from "../../src/ingest/redis_change_stream.ts";
import { createRedisClient } from "../../src/ratelimit/redis_client.ts";
import { createRedisRateLimiter } from "../../src/ratelimit/redis_rate_limiter.ts";
import { FANOUT_BATCH } from "../../src/store/kv/fanout.ts";
import { connectRedisKv } from "../../src/store/redis_kv/redis_kv.ts";
import { eventually } from "../_support/eventually.ts";
import { skipWithoutRedisCluster, startRedisCluster } from "../_support/redis_cluster.ts";
import { envelope, startServer } from "../_support/server.ts";
import { deliveryStoreContract } from "../store/contract/deliveries.ts";
import { eventStoreContract } from "../store/contract/events.ts";
import { inboxStoreContract } from "../store/contract/inbox.ts";
import { seqStoreContract } from "../store/contract/seqs.ts";
import { streamStoreContract } from "../store/contract/streams.ts";
import { ticketStoreContract } from "../store/contract/tickets.ts";
import type { Contract } from "../store/_contract.ts";
import { kvStoreHarness } from "../store/contract/_harness.ts";

const ignore = skipWithoutRedisCluster();
// Started outside any test, so that the contract's tests share it and none owns it.
const cluster = ignore ? undefined : await startRedisCluster();
if (cluster) globalThis.addEventListener("unload", () => cluster.kill());

function clusterUrl(): string {
  if (!cluster) throw new Error("No Redis Cluster for the tests");
  return cluster.url;
}

const fresh = (what: string) => `relais-test-${what}-${crypto.randomUUID()}`;

/** A cluster client of the tests' own, for looking at where keys live. */
function rawCluster(): Cluster {
  const redis = connectRedis(clusterUrl()) as Cluster;
  redis.on("error", () => {});
  return redis;
}

/** The client port of the master serving `key`'s slot. */
async function masterOf(redis: Cluster, key: string): Promise<number> {
  const slot = await redis.cluster("KEYSLOT", key) as number;
  const ranges = await redis.cluster("SLOTS");
  const range = ranges.find(([from, to]) => slot >= from && slot <= to);
  if (!range?.[2]) throw new Error(`No master serves slot ${slot}`);
  return range[2][1];
}

/** How many keys matching `pattern` the master on `port` holds itself. */
async function keysOn(port: number, pattern: string): Promise<number> {
  const node = new Redis(port, "127.0.0.1");
  node.on("error", () => {});
  try {
    return (await node.keys(pattern)).length;
  } finally {
    node.disconnect();
  }
}

/** One prefix per master, in the masters' order: `keyOf(prefix)` sits on that master. */
async function prefixOnEveryMaster(
  redis: Cluster,
  what: string,
  keyOf: (prefix: string) => string,
): Promise<string[]> {
  const byPort = new Map<number, string>();
  while (byPort.size < cluster!.ports.length) {
    const prefix = fresh(what);
    const port = await masterOf(redis, keyOf(prefix));
    if (!byPort.has(port)) byPort.set(port, prefix);
  }
  return cluster!.ports.map((port) => byPort.get(port)!);
}

Deno.test({
  name: "redis cluster: the redis kv commits, reads and lists on whichever master holds its slot",
  ignore,
  async fn() {
    const redis = rawCluster();
    try {
      assert.equal(cluster!.ports.length, 3);
      for (const prefix of await prefixOnEveryMaster(redis, "kv", (p) => `{${p}}:i`)) {
        const kv = connectRedisKv(clusterUrl(), { prefix });
        try {
          // A commit: checks, sets, a sum, all in one script.
          const first = await kv.atomic()
            .check({ key: ["n"], versionstamp: null })
            .set(["a", 1], "one")
            .set(["a", 2], { two: 2 })
            .sum(["n"], 5n)
            .commit();
          assert.ok(first.ok, prefix);
          // A check that fails writes nothing.
          const refused = await kv.atomic()
            .check({ key: ["n"], versionstamp: null })
            .set(["a", 3], "three")
            .commit();
          assert.equal(refused.ok, false);
          for (let i = 3; i < 40; i++) await kv.set(["a", i], i);
          // `getMany` is one MGET across value keys.
          const [one, none] = await kv.getMany([["a", 1], ["b"]]);
          assert.equal(one.value, "one");
          assert.equal(none.value, null);
          // The list script reads value keys it derives from the index, in small batches.
          const listed = [];
          for await (const e of kv.list({ prefix: ["a"] }, { batchSize: 7 })) listed.push(e.key[1]);
          assert.deepEqual(listed, Array.from({ length: 39 }, (_, i) => i + 1));
          const backwards = [];
          for await (const e of kv.list({ prefix: ["a"] }, { reverse: true, limit: 3 })) {
            backwards.push(e.key[1]);
          }
          assert.deepEqual(backwards, [39, 38, 37]);
          assert.equal((await kv.get<Deno.KvU64>(["n"])).value?.value, 5n);
          // Everything sits on the one master of the prefix's slot, none on the others.
          const home = await masterOf(redis, `{${prefix}}:i`);
          for (const port of cluster!.ports) {
            const found = await keysOn(port, `{${prefix}}:*`);
            if (port === home) assert.ok(found >= 42, `${found} keys on ${port}`);
            else assert.equal(found, 0, `keys of "${prefix}" on ${port}`);
          }
        } finally {
          kv.close();
        }
      }
    } finally {
      redis.disconnect();
    }
  },
});

// The store contract's representative suites on the Redis KV in the cluster.
if (!ignore) {
  const contract: Contract = {
    name: "kv store on a redis cluster",
    atomicTargets: FANOUT_BATCH,
    open() {
      const kv = connectRedisKv(clusterUrl(), { prefix: fresh("store") });
      return Promise.resolve(kvStoreHarness(kv));
    },
  };
  eventStoreContract(contract);
  streamStoreContract(contract);
  seqStoreContract(contract);
  deliveryStoreContract(contract);
  inboxStoreContract(contract);
  ticketStoreContract(contract);
}

Deno.test({
  name: "redis cluster: two buses exchange messages and list each other as nodes",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const prefix = fresh("bus");
    const a = createRedisBus(clusterUrl(), { node: "node-a", prefix, heartbeatMs: 200 });
    const b = createRedisBus(clusterUrl(), { node: "node-b", prefix, heartbeatMs: 200 });
    try {
      const onA: BusMessage[] = [];
      const onB: BusMessage[] = [];
      a.subscribe("t", (m) => onA.push(m));
      b.subscribe("t", (m) => onB.push(m));
      // Each bus gets what is published once it reads.
      await Promise.all([a.ready(), b.ready()]);
      for (let i = 0; i < 20; i++) await a.publish("t", `a${i}`);
      await b.publish("t", "from b");
      for (const [name, got] of [["node-a", onA], ["node-b", onB]] as const) {
        await eventually(() => got.length >= 21, 5000, `21 messages on ${name}`);
        assert.deepEqual(
          got.map((m) => `${m.from}:${m.data}`),
          [...Array.from({ length: 20 }, (_, i) => `node-a:a${i}`), "node-b:from b"],
          name,
        );
      }
      await eventually(
        async () => (await a.nodes()).map((n) => n.id).join() === "node-a,node-b",
        5000,
        "both nodes listed",
      );
      assert.deepEqual((await b.nodes()).map((n) => n.id), ["node-a", "node-b"]);
      // Every key of the bus sits in its one slot.
      const redis = rawCluster();
      try {
        const slots = new Set(
          await Promise.all(
            [`{${prefix}}:bus`, `{${prefix}}:bus:nodes`].map((k) => redis.cluster("KEYSLOT", k)),
          ),
        );
        assert.equal(slots.size, 1);
        assert.ok(await redis.exists(`{${prefix}}:bus`, `{${prefix}}:bus:nodes`) === 2);
      } finally {
        redis.disconnect();
      }
    } finally {
      await a.close();
      await b.close();
    }
  },
});

Deno.test({
  name: "redis cluster: the redis rate limiter counts across clients with its scripts by EVALSHA",
  ignore,
  async fn() {
    const redis = rawCluster();
    const clientA = createRedisClient(clusterUrl());
    const clientB = createRedisClient(clusterUrl());
    const rule = { limit: 5, windowMs: 60_000 };
    try {
      // One deployment per master: the library's script must be found, or run and
      // cached, on the master of each one's slot.
      const prefixes = await prefixOnEveryMaster(redis, "rl", (p) => `{${p}}:60000:x`);
      for (const prefix of prefixes) {
        const a = createRedisRateLimiter(clientA, { prefix, ownsClient: false });
        const b = createRedisRateLimiter(clientB, { prefix, ownsClient: false });
        for (const key of ["camille", "ip:127.0.0.1"]) {
          for (let i = 0; i < 3; i++) assert.ok((await a.hit(key, rule)).allowed, key);
          for (let i = 0; i < 2; i++) assert.ok((await b.hit(key, rule)).allowed, key);
          const refused = await a.hit(key, rule);
          assert.equal(refused.allowed, false, `${prefix} ${key}`);
          assert.ok(refused.retryAfterMs > 0);
          assert.equal((await b.peek(key, rule)).remaining, 0);
        }
      }
      assert.ok(clientA.mappedCalls > 0, "no EVALSHA reached Redis with the stripped script");
    } finally {
      await clientA.close();
      await clientB.close();
      redis.disconnect();
    }
  },
});

Deno.test({
  name: "redis cluster: the ingest reads its stream with XREADGROUP, acks and dead-letters",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const stream = `{${fresh("ingest")}}:changes`;
    const changes = createRedisChangeStream({
      url: clusterUrl(),
      stream,
      group: "relais",
      consumer: "node-a",
    });
    const redis = rawCluster();
    try {
      await changes.ensureGroup();
      await changes.ensureGroup();
      // A blocking read (on its own connection) gets the entry added while it waits, or
      // at once if the entry came first: either way, well before its 5 s are up.
      const reading = changes.readNew(10, 5000);
      const id = await redis.xadd(stream, "*", "data", '{"op":"c"}');
      const read = await reading;
      assert.deepEqual(read.map((e) => e.id), [id]);
      assert.equal((await changes.info()).pending, 1);
      await changes.deadLetter(read[0], "bad", "a test");
      await changes.ack([id!]);
      const info = await changes.info();
      assert.equal(info.pending, 0);
      assert.equal(info.deadLetters, 1);
      assert.equal((await changes.recentDeadLetters(5))[0].entry, id);
    } finally {
      await changes.close();
      redis.disconnect();
    }
  },
});

Deno.test({
  name:
    "redis cluster: an app in cluster mode delivers a NOTIFICATION over WebSocket and resumes after a reconnection",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const prefix = fresh("app");
    const outbox = await Deno.makeTempDir({ prefix: "relais-outbox-" });
    const server = await startServer({
      RELAIS_CLUSTER: "redis",
      REDIS_URL: clusterUrl(),
      RELAIS_REDIS_PREFIX: prefix,
      RELAIS_NODE_ID: "node-a",
      RELAIS_OUTBOX_DIR: outbox,
    });
    try {
      const first = await server.login("camille", { after: 0 });
      assert.equal(first.welcome.type, "welcome");
      const one = envelope(["camille"], { routing: { retry: { ack_required: true } } });
      assert.equal((await server.publish(one)).status, 202);
      const frame = await first.client.next((f) => f.type === "event");
      assert.equal(frame.envelope.metadata.id, (one.metadata as { id: string }).id);
      const seq = frame.seq as number;
      await first.client.close();

      // Published while camille is away, then read on resuming after `seq`.
      const two = envelope(["camille"]);
      assert.equal((await server.publish(two)).status, 202);
      const again = await server.login("camille", { after: seq, epoch: first.welcome.epoch });
      assert.equal(again.welcome.type, "welcome");
      const resumed = await again.client.next((f) => f.type === "event");
      assert.equal(resumed.envelope.metadata.id, (two.metadata as { id: string }).id);
      assert.equal(resumed.seq, seq + 1);
      assert.notEqual(again.welcome.recovered, false);

      // The store, the bus and the rate limits each sit in one slot of the cluster.
      const redis = rawCluster();
      try {
        assert.ok(await redis.zcard(`{${prefix}:kv}:i`) > 0, "no key indexed in the cluster");
        assert.ok(await redis.exists(`{${prefix}:cluster}:bus`) === 1, "no bus stream");
      } finally {
        redis.disconnect();
      }
    } finally {
      await server.close();
      await Deno.remove(outbox, { recursive: true });
    }
  },
});
