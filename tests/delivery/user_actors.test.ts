/** User actors share XState systems a few at a time, and end and fail one by one. */

import assert from "node:assert/strict";
import { type AnyActorRef, SimulatedClock, waitFor } from "xstate";
import { createRegistry } from "../../actors/registry.ts";
import type { LiveItem, UserContext } from "../../actors/user.machine.ts";
import { createStreamHeads } from "../../src/delivery/stream_heads.ts";
import {
  type ActorClock,
  defineUserActors,
  USER_ACTORS_PER_SYSTEM,
  type UserActorDeps,
  type UserActorStore,
} from "../../src/delivery/user_actors.ts";
import { createMetrics } from "../../src/metrics.ts";
import { createHub } from "../../src/realtime/hub.ts";
import { encodeEventFrame } from "../../src/schemas/frames.ts";
import { createMemoryStore } from "../../src/store/memory_store.ts";
import type { PendingAck } from "../../src/store/store.ts";
import { eventually, startServer } from "../_support/server.ts";
import { makeEnvelope, result } from "../_support/store.ts";

Deno.test("user actors share an XState system, a bounded number to each", async () => {
  const server = await startServer();
  try {
    const { registry } = server.relais;
    const count = USER_ACTORS_PER_SYSTEM + 8;
    const actors: AnyActorRef[] = [];
    for (let i = 0; i < count; i++) actors.push(await registry.get("user", `shared-${i}`));
    const systems = new Set(actors.map((a) => a.system));
    assert.equal(systems.size, 2);
    assert.ok(actors.slice(1, USER_ACTORS_PER_SYSTEM).every((a) => a.system === actors[0].system));
    assert.notEqual(actors[USER_ACTORS_PER_SYSTEM].system, actors[0].system);
    assert.ok(actors.every((a) => a.getSnapshot().status === "active"));
  } finally {
    await server.close();
  }
});

/** A simulated clock that knows which of its timers are still waiting. */
function countingClock() {
  const simulated = new SimulatedClock();
  const waiting = new Set<number>();
  const clock: ActorClock = {
    // The clock port's own method, which the actors schedule on: not a wait.
    setTimeout(fn, ms) {
      const id = simulated.setTimeout(() => {
        waiting.delete(id);
        fn();
      }, ms);
      waiting.add(id);
      return id;
    },
    clearTimeout(id) {
      waiting.delete(id as number);
      simulated.clearTimeout(id as number);
    },
  };
  return { clock, waiting: () => waiting.size };
}

Deno.test("a user actor in a shared system ends through the registry with its timers, alone", async () => {
  const registry = createRegistry();
  const { clock, waiting } = countingClock();
  defineUserActors({
    registry,
    store: createMemoryStore({ recentWindowMs: 60_000 }),
    hub: createHub(),
    metrics: createMetrics({ defaultMetrics: false }),
    recorder: { add() {} },
    ackBaseMs: 60_000,
    idleMs: 60_000,
    clock,
    onError: (message, error) => {
      throw new Error(`${message}: ${error}`);
    },
  });
  try {
    const gone = await registry.get("user", "gone");
    const stays = await registry.get("user", "stays");
    assert.equal(gone.system, stays.system);
    // Offline: each waits to passivate, on a timer of the shared system's clock.
    assert.equal(waiting(), 2);
    assert.deepEqual(registry.inspect("user", "gone")!.timers!.map((t) => t.id), ["idle"]);
    let completed = false;
    gone.subscribe({ complete: () => void (completed = true) });
    registry.stop("user", "gone");
    assert.equal(gone.getSnapshot().status, "done");
    assert.equal(completed, true);
    assert.equal(registry.peek("user", "gone"), undefined);
    assert.equal(waiting(), 1, "its own timer cancelled, its neighbour's kept");
    assert.equal(stays.getSnapshot().status, "active");
    // The next message rebuilds it.
    const again = await registry.get("user", "gone");
    assert.notEqual(again, gone);
    assert.equal(again.getSnapshot().status, "active");
  } finally {
    registry.stopAll();
  }
  assert.equal(waiting(), 0);
});

Deno.test("a passivated user actor is forgotten by the registry and rebuilt on demand", async () => {
  const registry = createRegistry();
  const hub = createHub();
  defineUserActors({
    registry,
    store: createMemoryStore({ recentWindowMs: 60_000 }),
    hub,
    metrics: createMetrics({ defaultMetrics: false }),
    recorder: { add() {} },
    ackBaseMs: 60_000,
    idleMs: 20,
    onError: (message, error) => {
      throw new Error(`${message}: ${error}`);
    },
  });
  try {
    const actor = await registry.get("user", "sleepy");
    actor.send({ type: "conn.open", connId: "c1" });
    actor.send({ type: "conn.close", connId: "c1" });
    await waitFor(actor, (s) => s.status === "done", { timeout: 2000 });
    assert.equal(registry.has("user", "sleepy"), false);
    assert.deepEqual(registry.list("user"), []);
    assert.equal(registry.counts().user, 0);
    const again = await registry.get("user", "sleepy");
    assert.notEqual(again, actor);
    assert.equal(again.getSnapshot().status, "active");
  } finally {
    registry.stopAll();
  }
});

Deno.test("a failing user actor is forgotten without taking the others down, and rebuilt", async () => {
  const server = await startServer({ RELAIS_LOG_LEVEL: "error" });
  try {
    const { registry } = server.relais;
    const broken = await registry.get("user", "broken");
    const neighbour = await registry.get("user", "neighbour");
    assert.equal(broken.system, neighbour.system);
    // An item without its payload makes the machine throw.
    broken.send({ type: "items.deliver" });
    await eventually(() => registry.peek("user", "broken") === undefined, 2000, "forgotten");
    assert.equal(broken.getSnapshot().status, "error");
    assert.equal(neighbour.getSnapshot().status, "active");
    const rebuilt = await registry.get("user", "broken");
    assert.equal(rebuilt.getSnapshot().status, "active");
  } finally {
    await server.close();
  }
});

/** Items handed to `deliver` reach their actors at the end of the turn. */
const settled = () => new Promise<void>((resolve) => queueMicrotask(resolve));

/** An item needing an ack, for user `u`. */
function acked(seq: number, id = `e${seq}`): LiveItem {
  const pending: PendingAck = { seq, id, attempts: 0, limit: 3, backoff: "FIXED" };
  return {
    item: { seq, id, type: "NOTIFICATION", durable: true, ack: true, at: Date.now() },
    pending,
    frame: encodeEventFrame(seq, JSON.stringify({ metadata: { id } })),
    acceptedAt: Date.now(),
    pace: "critical",
  };
}

Deno.test("a connected user's failing actor is rebuilt at once with its connections; its neighbour carries on", async () => {
  const registry = createRegistry({ metrics: createMetrics({ defaultMetrics: false }) });
  const hub = createHub();
  // A recording effect that breaks on one item: an unexpected error inside `sendFrame`.
  const recorder: UserActorDeps["recorder"] = {
    add(id) {
      if (id === "poison") throw new Error(`Cannot record "${id}"`);
    },
  };
  // The real store, counting the loads of pending acks that build an actor.
  const memory = createMemoryStore({ recentWindowMs: 60_000 });
  const loads: string[] = [];
  const store: UserActorStore = {
    ...memory,
    listPending(user) {
      loads.push(user);
      return memory.listPending(user);
    },
  };
  const errors: string[] = [];
  const users = defineUserActors({
    registry,
    store,
    hub,
    metrics: createMetrics({ defaultMetrics: false }),
    recorder,
    ackBaseMs: 60_000,
    idleMs: 60_000,
    onError: (message) => void errors.push(message),
  });
  const frames = new Map<string, number[]>([["u", []], ["v", []]]);
  try {
    for (const user of ["u", "v"]) {
      hub.add(`${user}-conn`, user, {
        transport: "ws",
        send: (text) => void frames.get(user)!.push(JSON.parse(text).seq),
        close: () => {},
      });
      hub.release(`${user}-conn`, 0);
    }
    // Both actors are built with the hub's connections already open, in one system.
    const u = await registry.get("user", "u");
    const v = await registry.get("user", "v");
    assert.equal(u.system, v.system);
    assert.deepEqual(Object.keys((u.getSnapshot().context as UserContext).connections), [
      "u-conn",
    ]);

    // An event needing an ack, published to "u": the store holds it as seq 1, pending.
    const first = makeEnvelope("NOTIFICATION", { ack: true });
    await memory.createEvent(first, ["u"], result(first, 1));
    await memory.runFanout(first.metadata.id, () => {});
    assert.deepEqual((await memory.listPending("u")).map((p) => p.seq), [1]);
    users.deliver("u", acked(1, first.metadata.id));
    await settled();
    users.deliver("u", acked(2, "poison"));
    await settled();
    // Sent before the effect broke, then the actor stopped on the error.
    assert.equal(u.getSnapshot().status, "error");
    assert.equal(registry.peek("user", "u"), undefined);
    // Still connected, so it is being rebuilt already; an item arriving meanwhile waits.
    assert.equal(registry.has("user", "u"), true);
    users.deliver("u", acked(3));
    users.deliver("v", acked(1));
    assert.equal(v.getSnapshot().status, "active");

    const rebuilt = await registry.get("user", "u");
    assert.notEqual(rebuilt, u);
    await eventually(() => frames.get("u")!.includes(3), 2000, "the item sent during the rebuild");
    users.deliver("u", acked(4));
    await settled();
    assert.deepEqual(frames.get("u"), [1, 2, 3, 4]);
    assert.deepEqual(frames.get("v"), [1]);
    const context = rebuilt.getSnapshot().context as UserContext;
    assert.deepEqual(Object.keys(context.connections), ["u-conn"]);
    // Rebuilt from the store: the pending ack it held, plus the items since.
    assert.deepEqual(Object.keys(context.pending).map(Number), [1, 3, 4]);
    assert.deepEqual(loads, ["u", "v", "u"]);
    assert.deepEqual(errors, []);
  } finally {
    registry.stopAll();
  }
});

Deno.test("a user's stream head ends with their actor, but not when a connected user's failed actor is rebuilt", async () => {
  const registry = createRegistry();
  const hub = createHub();
  const store = createMemoryStore({ recentWindowMs: 60_000 });
  const errors: string[] = [];
  const heads = createStreamHeads({
    store,
    release: () => {},
    recentWindowMs: 60_000,
    onError: (message) => errors.push(message),
  });
  defineUserActors({
    registry,
    store,
    heads,
    hub,
    metrics: createMetrics({ defaultMetrics: false }),
    recorder: { add() {} },
    ackBaseMs: 60_000,
    idleMs: 60_000,
    onError: (message) => errors.push(message),
  });
  try {
    // Stopped (as when it passivates): its head goes with it.
    await registry.get("user", "done");
    assert.equal(heads.has("done"), true);
    registry.stop("user", "done");
    assert.equal(heads.has("done"), false);

    // Failed with nobody connected: not rebuilt, and its head ends.
    const alone = await registry.get("user", "fail-alone");
    // An item without its payload makes the machine throw.
    alone.send({ type: "items.deliver" } as never);
    assert.equal(alone.getSnapshot().status, "error");
    assert.equal(heads.has("fail-alone"), false);

    // Failed with a connection open: rebuilt at once, and the head (its epoch) is kept.
    hub.add("c1", "fail-connected", { transport: "ws", send() {}, close() {} });
    const connected = await registry.get("user", "fail-connected");
    const epoch = heads.position("fail-connected")!.epoch;
    connected.send({ type: "items.deliver" } as never);
    assert.equal(connected.getSnapshot().status, "error");
    assert.equal(heads.has("fail-connected"), true);
    assert.equal(heads.position("fail-connected")!.epoch, epoch);
    assert.deepEqual(errors, []);
  } finally {
    registry.stopAll();
  }
});
