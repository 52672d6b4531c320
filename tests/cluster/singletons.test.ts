/**
 * Cluster singletons on a real Redis: several nodes (distinct node ids, one connection
 * each) share one Redis KV. One of them runs a singleton; when it dies (stops renewing
 * without releasing) another takes over within about one ttl and the old one stops as
 * soon as it notices; a graceful close hands over at once. During a handover two
 * mailers (or push runners) never send one mail (or push) twice, and one that lost its
 * lease sends nothing.
 */

import assert from "node:assert/strict";
import * as v from "valibot";
import { createLeases, type Lease, type Leases } from "../../src/cluster/leases.ts";
import { createSingletons, type Singletons } from "../../src/cluster/singletons.ts";
import { createDirectoryAudienceResolver } from "../../src/audience/directory_audience.ts";
import { createPublisher } from "../../src/delivery/publisher.ts";
import { createKvDirectory } from "../../src/directory/kv_directory.ts";
import { createKvMailQueue } from "../../src/mail/kv_mail_queue.ts";
import type { MailQueue } from "../../src/mail/mail_queue.ts";
import { CLAIM_MS, createMailer, type Mailer } from "../../src/mail/mailer.ts";
import type { MailTransport, OutgoingMail } from "../../src/mail/transport.ts";
import { createUnsubscribeTokens } from "../../src/mail/unsubscribe.ts";
import { createFanoutPlans } from "../../src/preferences/fanout_plan.ts";
import { createKvPreferences } from "../../src/preferences/kv_preferences.ts";
import { createKvPushStore } from "../../src/push/kv_push_store.ts";
import type { PushStore } from "../../src/push/push_store.ts";
import { CLAIM_MS as PUSH_CLAIM_MS, createPusher, type Pusher } from "../../src/push/pusher.ts";
import type { PushSender } from "../../src/push/sender.ts";
import type { FanoutBatch } from "../../src/store/store.ts";
import { type Envelope, EnvelopeSchema } from "../../src/schemas/envelope.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import { FIXTURE, freshFixture, loadFixtureDirectory } from "../_support/directory.ts";
import { eventually } from "../_support/eventually.ts";
import { freshPrefix, ignoreRedis, openRedisKv } from "../_support/redis_kv.ts";
import { barrier } from "../_support/barrier.ts";

const TTL = 300;
const RENEW = 100;
const RETRY = 50;

/**
 * `leases` as a node sees them: `freeze` makes every call wait (a paused or dead node),
 * `thaw` lets them through again, `cut` makes them throw (an unreachable store).
 */
function controllable(leases: Leases) {
  let gate: Promise<void> | undefined;
  let open = () => {};
  let cut = false;
  const counts = { acquires: 0, renewals: 0 };
  let last: Lease | undefined;
  async function pass() {
    while (gate) await gate;
    if (cut) throw new Error("Store unreachable");
  }
  const wrapped: Leases = {
    async acquire(kind, id) {
      await pass();
      counts.acquires++;
      const lease = await leases.acquire(kind, id);
      if (lease) last = lease;
      return lease;
    },
    async renew(lease) {
      await pass();
      counts.renewals++;
      const renewed = await leases.renew(lease);
      if (renewed) last = renewed;
      return renewed;
    },
    async release(lease) {
      await pass();
      return await leases.release(lease);
    },
    holder: (kind, id) => leases.holder(kind, id),
    fence: (op, lease) => leases.fence(op, lease),
  };
  return {
    leases: wrapped,
    counts,
    /** The last lease this node acquired or renewed. */
    last: () => last,
    freeze() {
      const { promise, resolve } = Promise.withResolvers<void>();
      gate = promise;
      open = () => {
        gate = undefined;
        resolve();
      };
    },
    thaw: () => open(),
    cut: () => void (cut = true),
  };
}

/** One node: its own Redis connection, leases, singletons and the singleton it runs. */
function startNode(prefix: string, node: string) {
  const kv = openRedisKv(prefix);
  const control = controllable(createLeases(kv, { node, ttlMs: TTL }));
  const errors: string[] = [];
  const singletons = createSingletons({
    leases: control.leases,
    ttlMs: TTL,
    renewMs: RENEW,
    retryMs: RETRY,
    onError: (message) => errors.push(message),
  });
  const state = { starts: 0, stops: 0, running: false, startedAt: 0, stoppedAt: 0 };
  return {
    node,
    kv,
    control,
    singletons,
    state,
    errors,
    /** Runs the singleton `mailer/main` here while this node holds its lease. */
    run: () =>
      singletons.run("mailer", "main", () => {
        state.starts++;
        state.running = true;
        state.startedAt = Date.now();
        return Promise.resolve();
      }, () => {
        state.stops++;
        state.running = false;
        state.stoppedAt = Date.now();
      }),
    async close() {
      control.thaw();
      await singletons.close();
      kv.close();
    },
  };
}

type Node = ReturnType<typeof startNode>;

function clusterTest(name: string, fn: (nodes: [Node, Node]) => Promise<void>) {
  Deno.test({
    name,
    ignore: ignoreRedis,
    async fn() {
      const prefix = freshPrefix();
      const nodes: [Node, Node] = [startNode(prefix, "node-a"), startNode(prefix, "node-b")];
      try {
        await fn(nodes);
      } finally {
        for (const n of nodes) await n.close();
      }
    },
  });
}

/** The node that runs the singleton, and the other one. */
function roles(nodes: [Node, Node]): { holder: Node; other: Node } {
  const running = nodes.filter((n) => n.state.running);
  assert.equal(running.length, 1, "exactly one node runs the singleton");
  return { holder: running[0], other: nodes.find((n) => n !== running[0])! };
}

clusterTest("singletons run on one node of two, which keeps renewing its lease", async (nodes) => {
  await Promise.all(nodes.map((n) => n.run()));
  const { holder, other } = roles(nodes);
  assert.equal(holder.singletons.running("mailer", "main"), true);
  assert.equal(other.singletons.running("mailer", "main"), false);

  // Barrier: the other node tried again and again, past several ttls of renewals.
  const tries = other.control.counts.acquires;
  await eventually(() => other.control.counts.acquires >= tries + 3 * (TTL / RETRY));
  assert.equal(other.state.starts, 0);
  assert.equal(holder.state.starts, 1);
  assert.equal(holder.state.stops, 0);
  assert.ok(holder.control.counts.renewals >= 3);
  assert.equal((await holder.control.leases.holder("mailer", "main"))?.node, holder.node);
});

clusterTest(
  "singletons move to another node within about a ttl when the holder dies, and the old one stops once it notices",
  async (nodes) => {
    await Promise.all(nodes.map((n) => n.run()));
    const { holder, other } = roles(nodes);
    const lastLease = holder.control.last()!;

    // The holder stops renewing without releasing: a paused or dead node.
    holder.control.freeze();
    const frozenAt = Date.now();
    await eventually(() => other.state.running, 5000, "the other node to take over");
    const tookMs = other.state.startedAt - frozenAt;
    // Not before the holder's lease lapsed, and soon after (with room for a loaded machine's
    // late timers: the point is a few retries, not the 5 s the wait above allows).
    assert.ok(other.state.startedAt >= lastLease.expiresAt, `took over after ${tookMs} ms`);
    assert.ok(tookMs < TTL + 4 * RETRY + 1500, `took over after ${tookMs} ms`);
    // The frozen node has not noticed yet, but its fenced commits fail already.
    assert.equal(holder.state.running, true);
    const write = holder.singletons.fence("mailer", "main", holder.kv.atomic()).set(["probe"], 1);
    assert.equal((await write.commit()).ok, false);
    const theirs = other.singletons.fence("mailer", "main", other.kv.atomic()).set(["probe"], 2);
    assert.equal((await theirs.commit()).ok, true);

    // Back: its next renewal says the lease is lost, and it stops.
    holder.control.thaw();
    await eventually(() => !holder.state.running, 3000, "the old holder to stop");
    assert.equal(holder.state.stops, 1);
    assert.equal(other.state.running, true);
    assert.equal((await other.control.leases.holder("mailer", "main"))?.node, other.node);
  },
);

clusterTest("singletons hand over at once on a graceful close", async (nodes) => {
  await Promise.all(nodes.map((n) => n.run()));
  const { holder, other } = roles(nodes);

  await holder.singletons.close();
  const lastLease = holder.control.last()!;
  assert.equal(holder.state.running, false);
  assert.equal(holder.state.stops, 1);
  assert.equal(await other.control.leases.holder("mailer", "main"), undefined);
  await eventually(() => other.state.running, 3000, "the other node to take over");
  // Before the closed node's lease would have lapsed: it was released.
  assert.ok(other.state.startedAt < lastLease.expiresAt);
});

clusterTest(
  "singletons stop on a node that cannot reach the store before its lease lapses",
  async (nodes) => {
    await Promise.all(nodes.map((n) => n.run()));
    const { holder, other } = roles(nodes);
    const lastLease = holder.control.last()!;

    holder.control.cut();
    await eventually(() => !holder.state.running, 3000, "the cut-off holder to stop");
    const stoppedAt = holder.state.stoppedAt;
    await eventually(() => other.state.running, 3000, "the other node to take over");
    // Never two at once: the cut-off node stopped before anyone could take over.
    assert.ok(stoppedAt <= lastLease.expiresAt);
    assert.ok(other.state.startedAt >= lastLease.expiresAt);
    assert.ok(holder.errors.some((e) => e.startsWith("Renewing the lease")));
  },
);

// ---- The mailer ----

/** A transport that records the Message-ID of every mail it is handed. */
function recordingTransport(sent: string[]): MailTransport {
  return {
    kind: "recording",
    send(mail: OutgoingMail) {
      sent.push(mail.messageId);
      return Promise.resolve();
    },
    close() {},
  };
}

/** One node's mailer over the shared Redis KV, its queue fenced by its singletons. */
function mailerNode(
  kv: Deno.Kv,
  sent: string[],
  options: { singletons?: Singletons; wrapQueue?: (q: MailQueue) => MailQueue } = {},
): Mailer {
  const { singletons } = options;
  const queue = createKvMailQueue(
    kv,
    singletons ? { fence: (op) => singletons.fence("mailer", "main", op) } : {},
  );
  return createMailer({
    queue: options.wrapQueue ? options.wrapQueue(queue) : queue,
    store: createKvStore(kv, { recentWindowMs: 60_000 }),
    directory: createKvDirectory(kv),
    preferences: createKvPreferences(kv),
    transport: recordingTransport(sent),
    tokens: createUnsubscribeTokens("secret"),
    from: "relais <no-reply@relais.test>",
    publicUrl: "https://relais.test",
    dailyDigestAt: "08:00",
    retryBaseMs: 1000,
    maxAttempts: 3,
    // Cluster mode: each task is claimed before its send.
    claimMs: CLAIM_MS,
  });
}

/** Queues one mail for each of `count` notifications to Hélène, due now. */
async function queueMails(kv: Deno.Kv, count: number) {
  const directory = createKvDirectory(kv);
  await loadFixtureDirectory(directory);
  const publisher = createPublisher({
    store: createKvStore(kv, { recentWindowMs: 60_000 }),
    audience: createDirectoryAudienceResolver(directory, { maxAudience: 100 }),
    syncFanoutLimit: 1000,
    deliverLive() {},
    onError(id, e) {
      throw new Error(`Fan-out of ${id} failed: ${e}`);
    },
    plan: createFanoutPlans({ preferences: createKvPreferences(kv), graceMs: 0 }),
  });
  for (let i = 0; i < count; i++) {
    const raw = await freshFixture("ask_for_feedback", (e) => {
      e.routing.audience.targets = [FIXTURE.helene];
    });
    await publisher.publish(v.parse(EnvelopeSchema, raw));
  }
}

/** `queue` whose `due` answers only once `arrive` lets every runner through together. */
function listedTogether<Q extends { due(now: number, limit: number): Promise<unknown[]> }>(
  queue: Q,
  arrive: () => Promise<void>,
): Q {
  return {
    ...queue,
    async due(now: number, limit: number) {
      const tasks = await queue.due(now, limit);
      await arrive();
      return tasks;
    },
  };
}

// ---- The push runner ----

const PUSH_ENDPOINT = "https://push.relais.test/send/";

/** One node's push runner over the shared Redis KV, its claims fenced by its singletons. */
function pusherNode(
  kv: Deno.Kv,
  sent: string[],
  options: { singletons?: Singletons; wrapStore?: (s: PushStore) => PushStore } = {},
): Pusher {
  const { singletons } = options;
  const store = createKvPushStore(
    kv,
    singletons ? { fence: (op) => singletons.fence("mailer", "main", op) } : {},
  );
  // The push service's side: what it was asked to deliver, by payload (event and seq).
  const sender: PushSender = {
    send(message) {
      const payload = JSON.parse(message.payload) as { id: string; seq: number };
      sent.push(`${payload.id}#${payload.seq}`);
      return Promise.resolve({ kind: "sent", status: 201 });
    },
  };
  return createPusher({
    push: options.wrapStore ? options.wrapStore(store) : store,
    store: createKvStore(kv, { recentWindowMs: 60_000 }),
    directory: createKvDirectory(kv),
    preferences: createKvPreferences(kv),
    sender,
    vapid: () => Promise.resolve({ publicKey: "pk", privateKey: "sk", subject: "mailto:x@y.z" }),
    endpoints: { hosts: ["push.relais.test"], allowLoopback: false },
    isLive: () => false,
    retryBaseMs: 1000,
    maxAttempts: 3,
    // Cluster mode: each task is claimed before its send.
    claimMs: PUSH_CLAIM_MS,
  });
}

/** Queues one push for each of `count` notifications to Hélène, on one subscription. */
async function queuePushes(kv: Deno.Kv, count: number) {
  const directory = createKvDirectory(kv);
  await loadFixtureDirectory(directory);
  await createKvPushStore(kv).putSubscription(FIXTURE.helene, {
    id: "sub-1",
    endpoint: `${PUSH_ENDPOINT}1`,
    keys: { p256dh: "p256dh", auth: "auth" },
    createdAt: Date.now(),
  }, 5);
  const batches: [FanoutBatch, Envelope][] = [];
  const publisher = createPublisher({
    store: createKvStore(kv, { recentWindowMs: 60_000 }),
    audience: createDirectoryAudienceResolver(directory, { maxAudience: 100 }),
    syncFanoutLimit: 1000,
    deliverLive: (batch, _json, envelope) => void batches.push([batch, envelope]),
    onError(id, e) {
      throw new Error(`Fan-out of ${id} failed: ${e}`);
    },
  });
  for (let i = 0; i < count; i++) {
    const raw = await freshFixture("ask_for_feedback", (e) => {
      e.routing.audience.targets = [FIXTURE.helene];
    });
    await publisher.publish(v.parse(EnvelopeSchema, raw));
  }
  const queueing = pusherNode(kv, []);
  for (const [batch, envelope] of batches) {
    assert.notEqual(await queueing.enqueue(batch, envelope), undefined, "a push queued");
  }
}

// ---- Both runners during a handover ----

/** A runner of a queue that claims each task before its send: the mailer, the pusher. */
interface ClaimingRunner<Q> {
  what: string;
  /** Queues one task for each of `count` notifications to Hélène. */
  fill(kv: Deno.Kv, count: number): Promise<void>;
  /** One node's runner, its queue wrapped by `wrap` and its claims fenced by `singletons`. */
  start(
    kv: Deno.Kv,
    sent: string[],
    options: { singletons?: Singletons; wrap?: (queue: Q) => Q },
  ): { runDue(limit: number): Promise<{ sent: number }>; depth(): Promise<number> };
}

const MAILER: ClaimingRunner<MailQueue> = {
  what: "mail",
  fill: queueMails,
  start(kv, sent, { singletons, wrap }) {
    const mailer = mailerNode(kv, sent, { ...(singletons ? { singletons } : {}), wrapQueue: wrap });
    return { runDue: (limit) => mailer.runDue(limit), depth: () => createKvMailQueue(kv).depth() };
  },
};

const PUSHER: ClaimingRunner<PushStore> = {
  what: "push",
  fill: queuePushes,
  start(kv, sent, { singletons, wrap }) {
    const pusher = pusherNode(kv, sent, { ...(singletons ? { singletons } : {}), wrapStore: wrap });
    return {
      runDue: (limit) => pusher.runDue(limit),
      depth: async () => (await pusher.peek()).depth,
    };
  },
};

for (const runner of [MAILER, PUSHER] as ClaimingRunner<unknown>[]) {
  const { what } = runner;

  Deno.test({
    name: `${what} runners that overlap during a handover send each ${what} once`,
    ignore: ignoreRedis,
    async fn() {
      const prefix = freshPrefix();
      const [kvA, kvB] = [openRedisKv(prefix), openRedisKv(prefix)];
      try {
        await runner.fill(kvA, 5);
        const sent: string[] = [];
        // Both runners list the same five due tasks before either sends one.
        const arrive = barrier(2);
        const wrap = <Q>(queue: Q) =>
          listedTogether(queue as { due(n: number, l: number): Promise<unknown[]> }, arrive) as Q;
        const a = runner.start(kvA, sent, { wrap });
        const b = runner.start(kvB, sent, { wrap });

        const [runA, runB] = await Promise.all([a.runDue(50), b.runDue(50)]);

        assert.equal(sent.length, 5, `five sent`);
        assert.equal(new Set(sent).size, 5, `no ${what} twice`);
        assert.equal(runA.sent + runB.sent, 5);
        assert.equal(await a.depth(), 0);
      } finally {
        kvA.close();
        kvB.close();
      }
    },
  });

  Deno.test({
    name: `a ${what} runner that lost its lease sends nothing, and the new holder sends all`,
    ignore: ignoreRedis,
    async fn() {
      const prefix = freshPrefix();
      const nodes = [startNode(prefix, "node-a"), startNode(prefix, "node-b")] as [Node, Node];
      try {
        await Promise.all(nodes.map((n) => n.run()));
        const { holder, other } = roles(nodes);
        await runner.fill(holder.kv, 3);
        const sent: string[] = [];
        const stale = runner.start(holder.kv, sent, { singletons: holder.singletons });
        const fresh = runner.start(other.kv, sent, { singletons: other.singletons });

        // The holder pauses; the other node takes the runner over.
        holder.control.freeze();
        await eventually(() => other.state.running, 5000, "the other node to take over");
        // The paused node's runner, still running (it has not noticed), claims nothing.
        const staleRun = await stale.runDue(50);
        assert.equal(staleRun.sent, 0);
        assert.deepEqual(sent, []);

        const freshRun = await fresh.runDue(50);
        assert.equal(freshRun.sent, 3);
        assert.equal(new Set(sent).size, 3);
        assert.equal(await fresh.depth(), 0);
      } finally {
        for (const n of nodes) await n.close();
      }
    },
  });
}
