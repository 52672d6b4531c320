/**
 * Fan-out takeover on a real Redis: a job a dead node left unfinished is finished by the
 * janitor of another node, every target once; the janitor leaves alone a job whose
 * publishing node still runs it; and two runners of one job that overlap (what the
 * job's lease prevents) still write every target exactly once.
 */

import assert from "node:assert/strict";
import { createUserAudienceResolver } from "../../src/audience/audience.ts";
import { createFanoutJanitor } from "../../src/cluster/fanout_janitor.ts";
import { createLeases } from "../../src/cluster/leases.ts";
import { createSingletons } from "../../src/cluster/singletons.ts";
import { createPublisher, type PublisherDeps } from "../../src/delivery/publisher.ts";
import type { Envelope } from "../../src/schemas/envelope.ts";
import { streamPrefix } from "../../src/store/keys.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import type { FanoutBatch, Store } from "../../src/store/store.ts";
import { eventually } from "../_support/eventually.ts";
import { freshPrefix, ignoreRedis, openRedisKv } from "../_support/redis_kv.ts";
import { makeEnvelope, result } from "../_support/store.ts";
import { barrier } from "../_support/barrier.ts";

const TTL = 300;
const RENEW = 100;
const RETRY = 50;
const JANITOR_MS = 50;

const usersOf = (n: number) => Array.from({ length: n }, (_, i) => `user-${i}`);

function notificationTo(users: string[]): Envelope {
  const e = makeEnvelope("NOTIFICATION", { ack: true });
  e.routing.audience.targets = users;
  return e;
}

/** Per user, how many stream items they have, and at which seqs. */
async function streams(kv: Deno.Kv, users: string[]): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  await Promise.all(users.map(async (user) => {
    const seqs: number[] = [];
    for await (const e of kv.list({ prefix: streamPrefix(user) })) seqs.push(e.key[2] as number);
    out.set(user, seqs);
  }));
  return out;
}

/** Asserts that every user has exactly one stream item, at seq 1. */
async function assertOneItemEach(kv: Deno.Kv, users: string[]) {
  const seqs = await streams(kv, users);
  const wrong = [...seqs].filter(([, s]) => s.length !== 1 || s[0] !== 1);
  assert.deepEqual(wrong, [], "every target has exactly one item");
}

/** The users of `batches`, asserting that none appears twice. */
function usersIn(batches: FanoutBatch[]): Set<string> {
  const users = batches.flatMap((b) => b.items.map((i) => i.user));
  const set = new Set(users);
  assert.equal(set.size, users.length, "no target delivered twice");
  return set;
}

/** One node with the janitor singleton: its KV, store, publisher (jobs under leases). */
async function startNode(prefix: string, node: string, extra: Partial<PublisherDeps> = {}) {
  const kv = openRedisKv(prefix);
  const store = createKvStore(kv, { recentWindowMs: 60_000 });
  const leases = createLeases(kv, { node, ttlMs: TTL });
  const errors: string[] = [];
  const onError = (message: string, error: unknown) => errors.push(`${message}: ${error}`);
  const singletons = createSingletons({
    leases,
    ttlMs: TTL,
    renewMs: RENEW,
    retryMs: RETRY,
    onError,
  });
  const batches: (FanoutBatch & { at: number })[] = [];
  // What the janitor handed on, and which of those this node ran (it held the job's lease).
  const attempted: string[] = [];
  const ran: string[] = [];
  const publisher = createPublisher({
    store,
    audience: createUserAudienceResolver({ maxAudience: 10_000 }),
    deliverLive: (batch) => void batches.push({ ...batch, at: Date.now() }),
    onError: (id, e) => onError(`Fan-out of "${id}" failed`, e),
    syncFanoutLimit: 10,
    jobLeases: {
      async hold(id, work) {
        const out = await singletons.hold("fanout", id, () => {
          ran.push(id);
          return work();
        });
        attempted.push(id);
        return out;
      },
    },
    ...extra,
  });
  const janitor = createFanoutJanitor({
    work: [{
      name: "event fan-outs",
      unfinished: () => store.unfinishedFanouts(),
      resume: (ids) => publisher.resumeUnfinished(ids),
    }],
    intervalMs: JANITOR_MS,
    onError,
  });
  await singletons.run("janitor", "fanouts", () => janitor.start(), () => janitor.stop());
  return {
    node,
    kv,
    store,
    publisher,
    singletons,
    batches,
    attempted,
    ran,
    errors,
    async close() {
      await singletons.close();
      await publisher.idle();
      kv.close();
    },
  };
}

type Node = Awaited<ReturnType<typeof startNode>>;

Deno.test({
  name:
    "fan-out takeover: another node's janitor finishes the job a dead node left, every target once",
  ignore: ignoreRedis,
  async fn() {
    const prefix = freshPrefix();
    // Four batches on the Redis KV (500, 500, 500 and 400 users): the dead node hands on
    // two, and the third, under way then, lands.
    const users = usersOf(1900);
    // The node that dies: it creates the event, takes the job's lease, writes two batches.
    const deadKv = openRedisKv(prefix);
    const nodes: Node[] = [];
    try {
      const dead = createKvStore(deadKv, { recentWindowMs: 60_000 });
      const e = notificationTo(users);
      const id = e.metadata.id;
      await dead.createEvent(e, users, result(e, users.length));
      const lease = await createLeases(deadKv, { node: "node-dead", ttlMs: TTL })
        .acquire("fanout", id);
      assert.ok(lease);
      const early: FanoutBatch[] = [];
      await assert.rejects(() =>
        dead.runFanout(id, (batch) => {
          early.push(batch);
          if (early.length === 2) throw new Error("The node died");
        })
      );
      assert.deepEqual(await dead.unfinishedFanouts(), [id]);
      const before = usersIn(early);
      assert.ok(before.size > 0 && before.size < users.length);

      // Two live nodes: one of them runs the janitor, and takes the job over.
      nodes.push(await startNode(prefix, "node-b"), await startNode(prefix, "node-c"));
      const janitors = nodes.filter((n) => n.singletons.running("janitor", "fanouts"));
      assert.equal(janitors.length, 1, "one janitor in the cluster");
      await eventually(async () => (await nodes[0].store.getEvent(id))?.fanningOut === false, 5000);

      assert.deepEqual(await nodes[0].store.unfinishedFanouts(), []);
      await assertOneItemEach(deadKv, users);
      const after = usersIn(nodes.flatMap((n) => n.batches));
      assert.deepEqual([...before].filter((u) => after.has(u)), [], "no target twice");
      assert.equal(before.size + after.size, users.length);
      // Only the janitor's node ran it, and not before the dead node's lease lapsed.
      assert.deepEqual(janitors[0].ran, [id]);
      const first = Math.min(...janitors[0].batches.map((b) => b.at));
      assert.ok(first >= lease.expiresAt);
      assert.deepEqual(nodes.flatMap((n) => n.errors), []);
    } finally {
      for (const n of nodes) await n.close();
      deadKv.close();
    }
  },
});

Deno.test({
  name: "fan-out takeover: the janitor leaves alone a job its publishing node is running",
  ignore: ignoreRedis,
  async fn() {
    const prefix = freshPrefix();
    const users = usersOf(200);
    const nodes: Node[] = [];
    // The publishing node's first batch waits until the janitor has tried the job.
    const gate = Promise.withResolvers<void>();
    try {
      const janitorNode = await startNode(prefix, "node-janitor");
      nodes.push(janitorNode);
      const publishing = await startNode(prefix, "node-publisher", {
        plan: () => async (batch) => {
          await gate.promise;
          return batch.map(() => ({ quiet: false }));
        },
      });
      nodes.push(publishing);
      assert.equal(janitorNode.singletons.running("janitor", "fanouts"), true);

      const e = notificationTo(users);
      const id = e.metadata.id;
      await publishing.publisher.publish(e);
      // The janitor saw the job twice and handed it on; the job's lease was held.
      await eventually(() => janitorNode.attempted.includes(id), 5000, "the janitor's attempt");
      assert.deepEqual(janitorNode.ran, []);
      // Past the ttl, the publishing node still holds it: its renewals keep it.
      const tries = janitorNode.attempted.length;
      await eventually(() => janitorNode.attempted.length >= tries + TTL / JANITOR_MS, 5000);
      assert.deepEqual(janitorNode.ran, []);
      assert.equal(publishing.batches.length, 0);

      gate.resolve();
      await publishing.publisher.idle();
      assert.equal((await publishing.store.getEvent(id))?.fanningOut, false);
      assert.deepEqual(usersIn(publishing.batches), new Set(users));
      assert.deepEqual(janitorNode.batches, []);
      assert.deepEqual(janitorNode.ran, []);
      await assertOneItemEach(publishing.kv, users);
    } finally {
      gate.resolve();
      for (const n of nodes) await n.close();
    }
  },
});

/**
 * `kv` whose first read of a fan-out job waits until `arrive` says every runner read it,
 * and which counts the commits that failed their checks.
 */
function overlapping(kv: Deno.Kv, arrive: () => Promise<void>, failed: { count: number }) {
  let first = true;
  const get = async (...args: Parameters<Deno.Kv["get"]>) => {
    const entry = await kv.get(...args);
    if (first && args[0][0] === "job") {
      first = false;
      await arrive();
    }
    return entry;
  };
  const atomic = () => {
    const op = kv.atomic();
    const commit = op.commit.bind(op);
    op.commit = async () => {
      const res = await commit();
      if (!res.ok) failed.count++;
      return res;
    };
    return op;
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "get") return get;
      if (prop === "atomic") return atomic;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test({
  name:
    "fan-out on the redis kv: two runners of one job that overlap write every target exactly once",
  ignore: ignoreRedis,
  async fn() {
    const prefix = freshPrefix();
    const users = usersOf(500);
    const arrive = barrier(2);
    const failed = { count: 0 };
    const kvs = [openRedisKv(prefix), openRedisKv(prefix)];
    try {
      const [a, b]: Store[] = kvs.map((kv) =>
        createKvStore(overlapping(kv, arrive, failed), { recentWindowMs: 60_000 })
      );
      const e = notificationTo(users);
      const id = e.metadata.id;
      await a.createEvent(e, users, result(e, users.length));
      const batches: FanoutBatch[] = [];

      // Both read the job at its start before either commits a batch.
      const outcomes = await Promise.allSettled([
        a.runFanout(id, (batch) => void batches.push(batch)),
        b.runFanout(id, (batch) => void batches.push(batch)),
      ]);

      // They did overlap: a batch of one was refused by the other's progress.
      assert.ok(failed.count >= 1, "a commit was refused");
      assert.ok(outcomes.some((o) => o.status === "fulfilled"));
      for (const o of outcomes) {
        if (o.status === "rejected") assert.match(String(o.reason), /keeps conflicting/);
      }
      assert.deepEqual(usersIn(batches), new Set(users));
      assert.equal((await a.getEvent(id))?.fanningOut, false);
      assert.deepEqual(await a.unfinishedFanouts(), []);
      await assertOneItemEach(kvs[0], users);
    } finally {
      for (const kv of kvs) kv.close();
    }
  },
});
