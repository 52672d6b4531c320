/** New items reach users only through their actors, one batch per user and turn. */

import assert from "node:assert/strict";
import { SimulatedClock } from "xstate";
import { createRegistry } from "../../actors/registry.ts";
import type { LiveItem, Pacing, UserContext } from "../../actors/user.machine.ts";
import { createStreamHeads } from "../../src/delivery/stream_heads.ts";
import {
  defineUserActors,
  FLUSH_USERS,
  type UserActorDeps,
} from "../../src/delivery/user_actors.ts";
import { createMetrics } from "../../src/metrics.ts";
import { createHub } from "../../src/realtime/hub.ts";
import { encodeEventFrame } from "../../src/schemas/frames.ts";
import { createMemoryStore } from "../../src/store/memory_store.ts";
import { eventually } from "../_support/server.ts";
import { makeEnvelope, result } from "../_support/store.ts";

function live(
  seq: number,
  options: { ack?: boolean; pace?: LiveItem["pace"] } = {},
): LiveItem {
  const id = `e${seq}`;
  return {
    item: { seq, id, type: "REALTIME", durable: false, ack: options.ack ?? false, at: Date.now() },
    ...(options.ack
      ? { pending: { seq, id, attempts: 0, limit: 3, backoff: "FIXED" as const } }
      : {}),
    frame: encodeEventFrame(seq, JSON.stringify({ metadata: { id } })),
    acceptedAt: Date.now(),
    pace: options.pace ?? "normal",
  };
}

/** Items handed to `deliver` reach their actors at the end of the turn. */
const settled = () => new Promise<void>((resolve) => queueMicrotask(resolve));

async function harness(pacing: Pacing, clock?: SimulatedClock) {
  const registry = createRegistry();
  const hub = createHub();
  const recorded: string[] = [];
  const recorder: UserActorDeps["recorder"] = {
    add: (id) => void recorded.push(id),
  };
  const users = defineUserActors({
    registry,
    store: createMemoryStore({ recentWindowMs: 60_000 }),
    hub,
    metrics: createMetrics(),
    recorder,
    ackBaseMs: 60_000,
    idleMs: 60_000,
    pacing,
    ...(clock ? { clock } : {}),
    onError: (message, error) => {
      throw new Error(`${message}: ${error}`);
    },
  });
  const frames: Record<string, unknown>[] = [];
  const actor = await registry.get("user", "u");
  hub.add("c1", "u", {
    transport: "ws",
    send: (text) => void frames.push(JSON.parse(text)),
    close: () => {},
  });
  hub.release("c1", 0);
  actor.send({ type: "conn.open", connId: "c1" });
  const context = () => actor.getSnapshot().context as UserContext;
  // Machine steps the actor takes (one snapshot per event it processes).
  let steps = 0;
  actor.subscribe({ next: () => void steps++, error: () => {} });
  return {
    registry,
    users,
    frames,
    recorded,
    context,
    steps: () => steps,
    stop: () => registry.stopAll(),
  };
}

Deno.test("items for one user in one turn reach the actor as one batch, folded past the budget", async () => {
  const clock = new SimulatedClock();
  const h = await harness({ lowWindowMs: 0, pushBudget: 3, budgetWindowMs: 150 }, clock);
  try {
    const before = h.steps();
    for (let seq = 1; seq <= 5; seq++) h.users.deliver("u", live(seq));
    // Nothing goes around the actor: not a frame before its step.
    assert.equal(h.frames.length, 0);
    await settled();
    assert.equal(h.steps() - before, 1, "one machine step for the five items");
    assert.deepEqual(h.frames.map((f) => f.seq), [1, 2, 3]);
    assert.equal(h.context().pushes.pushed, 3);
    assert.equal(h.context().pushes.lastSeqSent, 5);
    assert.deepEqual(h.context().folded, { count: 2, firstSeq: 4, lastSeq: 5 });
    assert.deepEqual(h.recorded, ["e1", "e2", "e3"]);

    clock.increment(150);
    const summary = h.frames.at(-1)!;
    assert.equal(summary.type, "summary");
    assert.deepEqual([summary.count, summary.first_seq, summary.last_seq], [2, 4, 5]);
    // A new window: the budget starts again.
    for (let seq = 6; seq <= 8; seq++) h.users.deliver("u", live(seq));
    await settled();
    assert.deepEqual(h.frames.slice(-3).map((f) => f.seq), [6, 7, 8]);
    assert.equal(h.context().pushes.pushed, 3);
  } finally {
    h.stop();
  }
});

Deno.test("a turn's items for more users than a slice reach every actor, each user's in order", async () => {
  const registry = createRegistry();
  const hub = createHub();
  const users = defineUserActors({
    registry,
    store: createMemoryStore({ recentWindowMs: 60_000 }),
    hub,
    metrics: createMetrics(),
    recorder: { add: () => {} },
    ackBaseMs: 60_000,
    idleMs: 60_000,
    onError: (message, error) => {
      throw new Error(`${message}: ${error}`);
    },
  });
  const count = FLUSH_USERS + 10;
  const frames = new Map<string, number[]>();
  try {
    for (let i = 0; i < count; i++) {
      const user = `s${i}`;
      const got: number[] = [];
      frames.set(user, got);
      const actor = await registry.get("user", user);
      hub.add(`c${i}`, user, {
        transport: "ws",
        send: (text) => void got.push(JSON.parse(text).seq),
        close: () => {},
      });
      hub.release(`c${i}`, 0);
      actor.send({ type: "conn.open", connId: `c${i}` });
    }
    for (let i = 0; i < count; i++) users.deliver(`s${i}`, live(1));
    // The first slice went out as the turn handed it over, through the actors.
    assert.deepEqual(frames.get("s0"), [1]);
    assert.deepEqual(frames.get(`s${count - 1}`), []);
    // A user's later item of the same turn follows the one already out.
    users.deliver("s0", live(2));
    await settled();
    assert.deepEqual(frames.get("s0"), [1, 2]);
    for (let i = 1; i < count; i++) assert.deepEqual(frames.get(`s${i}`), [1], `s${i}`);
  } finally {
    registry.stopAll();
  }
});

Deno.test("items that need an ack or grouping are tracked and grouped by the user machine", async () => {
  const clock = new SimulatedClock();
  const h = await harness({ lowWindowMs: 60, pushBudget: 100, budgetWindowMs: 60_000 }, clock);
  try {
    h.users.deliver("u", live(1));
    h.users.deliver("u", live(2, { ack: true, pace: "critical" }));
    h.users.deliver("u", live(3));
    await settled();
    h.users.deliver("u", live(4, { pace: "low" }));
    await settled();
    assert.deepEqual(h.frames.map((f) => f.seq), [1, 2, 3]);
    // The acked item is tracked with its redelivery schedule, the LOW one waits for its group.
    assert.ok(h.context().pending[2]?.nextAt !== undefined);
    assert.equal(h.context().lowBuffer.length, 1);
    assert.equal(h.context().pushes.pushed, 3);
    clock.increment(60);
    assert.equal(h.frames.at(-1)!.type, "batch");
    assert.equal(h.context().lowBuffer.length, 0);
    // Nobody to see it: the item only moves the actor's position in the stream.
    h.registry.peek("user", "u")!.send({ type: "conn.close", connId: "c1" });
    const before = h.frames.length;
    h.users.deliver("u", live(5));
    await settled();
    assert.equal(h.frames.length, before);
    assert.equal(h.context().pushes.lastSeqSent, 5);
  } finally {
    h.stop();
  }
});

Deno.test("an item sent before its fan-out wrote it is dead-lettered once written, not before", async () => {
  const registry = createRegistry();
  const hub = createHub();
  const store = createMemoryStore({ recentWindowMs: 60_000 });
  const heads = createStreamHeads({
    store,
    release: () => {},
    recentWindowMs: 60_000,
    onError: (message) => {
      throw new Error(message);
    },
  });
  const letters: number[] = [];
  const users = defineUserActors({
    registry,
    // The real store, its dead letters seen on their way.
    store: {
      ...store,
      deadLetter(user, pending, reason, now) {
        letters.push(...pending.map((p) => p.seq));
        return store.deadLetter(user, pending, reason, now);
      },
    },
    heads,
    hub,
    metrics: createMetrics({ defaultMetrics: false }),
    recorder: { add() {} },
    ackBaseMs: 20,
    idleMs: 600_000,
    onError: (message, error) => {
      throw new Error(`${message}: ${error}`);
    },
  });
  try {
    const actor = await registry.get("user", "u");
    hub.add("c1", "u", { transport: "ws", send: () => {}, close: () => {} });
    hub.release("c1", 0);
    actor.send({ type: "conn.open", connId: "c1" });
    // Published to a large audience: its job has not written the user's entry yet, and
    // the item goes ahead of it, held as the publisher holds it.
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    const id = e.metadata.id;
    await store.createEvent(e, ["u"], result(e, 1), { assigned: new Map([["u", 1]]) });
    const sent = live(1, { ack: true });
    const item: LiveItem = {
      ...sent,
      item: { ...sent.item, id, durable: true },
      pending: { ...sent.pending!, id },
    };
    heads.hold("u", item.item, "{}");
    users.deliver("u", item);
    await settled();
    const attemptsOf = () =>
      (actor.getSnapshot().context as UserContext).pending[1]?.attempts ?? Infinity;
    // Redelivered three times, 20 ms apart: its limit is reached.
    await eventually(() => item.pending!.limit <= attemptsOf(), 5_000, "three redeliveries");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(letters, [], "not dead-lettered while its fan-out has not written it");
    // The job writes the entry (its pending ack with it), and tells the head.
    await store.runFanout(id, () => {});
    heads.stored("u", 1);
    await eventually(() => letters.length > 0, 5_000, "the dead letter");
    assert.deepEqual(letters, [1]);
    // It ended what the job wrote: nothing waits for an ack any more.
    await eventually(async () => (await store.getStatus(id))?.failed === 1, 5_000, "failed");
    assert.deepEqual(await store.listPending("u"), []);
  } finally {
    registry.stopAll();
  }
});
