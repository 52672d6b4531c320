/** The registry supervises its actors: a failing one stops alone, is counted and rebuilt. */

import assert from "node:assert/strict";
import { type LogRecord, reset } from "@logtape/logtape";
import { assign, createActor, fromPromise, setup } from "xstate";
import { type ActorKind, createRegistry, type Supervision } from "../../actors/registry.ts";
import { configureLogging } from "../../src/log.ts";
import { createMetrics } from "../../src/metrics.ts";
import { eventually } from "../_support/server.ts";

/**
 * A small actor: counts `ping`s, throws in an action on `boom`, and on `fetch` invokes a
 * promise that rejects with no `onError`. Built from a "store" that counts its builds.
 */
const machine = setup({
  types: {
    context: {} as { id: string; pings: number },
    events: {} as { type: "ping" } | { type: "boom" } | { type: "fetch" },
    input: {} as { id: string; failOnStart?: boolean },
  },
  actions: {
    explode: (_, params: { id: string }) => {
      throw new Error(`Action failed for "${params.id}"`);
    },
  },
  actors: {
    fetch: fromPromise<string>(() => Promise.reject(new Error("Fetch failed"))),
  },
}).createMachine({
  context: ({ input }) => {
    if (input.failOnStart) throw new Error("Corrupt state");
    return { id: input.id, pings: 0 };
  },
  initial: "idle",
  states: {
    idle: {
      on: {
        ping: { actions: assign({ pings: ({ context }) => context.pings + 1 }) },
        boom: { actions: { type: "explode", params: ({ context }) => ({ id: context.id }) } },
        fetch: "fetching",
      },
    },
    // No onError: the rejection is unexpected, so the actor fails.
    fetching: { invoke: { src: "fetch", onDone: "idle" } },
  },
});

async function harness(
  supervision: Supervision = {},
  options: { maxRestarts?: number; failOnStart?: Set<string> } = {},
) {
  const records: LogRecord[] = [];
  await configureLogging("error", (record) => void records.push(record));
  const metrics = createMetrics({ defaultMetrics: false });
  const registry = createRegistry({ metrics, maxRestarts: options.maxRestarts ?? 3 });
  const builds = new Map<string, number>();
  const kind: ActorKind = "conversation";
  registry.define(kind, (id) => {
    builds.set(id, (builds.get(id) ?? 0) + 1);
    const failOnStart = options.failOnStart?.has(id) ?? false;
    return Promise.resolve(createActor(machine, { input: { id, failOnStart } }));
  }, supervision);
  const failures = async () => {
    const text = await metrics.render();
    return Number(/^relais_actor_failures_total\{kind="conversation"\} (\d+)$/m.exec(text)?.[1]);
  };
  return {
    registry,
    kind,
    records,
    builds,
    failures,
    async close() {
      registry.stopAll();
      await reset();
    },
  };
}

Deno.test("an actor whose action throws is stopped, logged, counted, forgotten and rebuilt by the next get", async () => {
  const h = await harness();
  try {
    const failing = await h.registry.get(h.kind, "c-1");
    const other = await h.registry.get(h.kind, "c-2");
    other.send({ type: "ping" });
    assert.equal(await h.failures(), 0);

    failing.send({ type: "boom" });

    // The process is still here (this line runs) and the actor is stopped on its error.
    assert.equal(failing.getSnapshot().status, "error");
    assert.equal(h.registry.peek(h.kind, "c-1"), undefined);
    assert.equal(h.registry.has(h.kind, "c-1"), false);
    assert.deepEqual(h.registry.list().map((a) => a.id), ["c-2"]);
    assert.equal(await h.failures(), 1);
    const failed = h.records.filter((r) => r.message.join("") === "Actor failed and was stopped");
    assert.equal(failed.length, 1);
    assert.equal(failed[0].level, "error");
    assert.deepEqual(failed[0].category, ["relais", "actors"]);
    assert.equal(failed[0].properties.kind, "conversation");
    assert.equal(failed[0].properties.id, "c-1");
    assert.match(String(failed[0].properties.error), /Action failed for "c-1"/);

    // The sibling is untouched and keeps working.
    other.send({ type: "ping" });
    assert.equal(other.getSnapshot().status, "active");
    assert.equal(other.getSnapshot().context.pings, 2);
    assert.equal(h.registry.peek(h.kind, "c-2"), other);

    // No restart policy: it comes back, rebuilt by its spawner, on the next get.
    assert.equal(h.builds.get("c-1"), 1);
    const rebuilt = await h.registry.get(h.kind, "c-1");
    assert.notEqual(rebuilt, failing);
    assert.equal(h.builds.get("c-1"), 2);
    rebuilt.send({ type: "ping" });
    assert.equal(rebuilt.getSnapshot().status, "active");
    assert.equal(rebuilt.getSnapshot().context.pings, 1);
    assert.equal(h.builds.get("c-2"), 1);
  } finally {
    await h.close();
  }
});

Deno.test("an invoked promise that rejects with no onError fails its actor alone", async () => {
  const h = await harness();
  try {
    const failing = await h.registry.get(h.kind, "c-1");
    const other = await h.registry.get(h.kind, "c-2");
    failing.send({ type: "fetch" });
    // The rejection is reported on a later turn: wait for the actor to be forgotten.
    await eventually(() => !h.registry.peek(h.kind, "c-1"), 2000, "the failed actor forgotten");
    assert.equal(failing.getSnapshot().status, "error");
    assert.equal(await h.failures(), 1);
    assert.equal(other.getSnapshot().status, "active");
    assert.equal((await h.registry.get(h.kind, "c-1")).getSnapshot().status, "active");
  } finally {
    await h.close();
  }
});

Deno.test("a kind that restarts gets its failed actor back at once, and its callers are told", async () => {
  const told: string[] = [];
  const h = await harness({ restart: () => true, onFailure: (id) => void told.push(id) });
  try {
    const failing = await h.registry.get(h.kind, "c-1");
    failing.send({ type: "boom" });
    assert.deepEqual(told, ["c-1"]);
    // The rebuild is under way: `has` says so, and a get joins it rather than starting another.
    assert.equal(h.registry.has(h.kind, "c-1"), true);
    const rebuilt = await h.registry.get(h.kind, "c-1");
    assert.equal(h.builds.get("c-1"), 2);
    assert.equal(h.registry.peek(h.kind, "c-1"), rebuilt);
    assert.equal(rebuilt.getSnapshot().status, "active");
  } finally {
    await h.close();
  }
});

Deno.test("an actor failing again and again is restarted a bounded number of times, then on demand", async () => {
  const h = await harness({ restart: () => true }, { maxRestarts: 2 });
  try {
    for (let round = 0; round < 3; round++) {
      const actor = await h.registry.get(h.kind, "c-1");
      actor.send({ type: "boom" });
    }
    // Built once, restarted twice, then left for the next get.
    assert.equal(h.builds.get("c-1"), 3);
    assert.equal(h.registry.has(h.kind, "c-1"), false);
    assert.equal(await h.failures(), 3);
    assert.ok(
      h.records.some((r) =>
        r.message.join("") === "Actor failed too often to be restarted at once"
      ),
    );
    const again = await h.registry.get(h.kind, "c-1");
    assert.equal(again.getSnapshot().status, "active");
    assert.equal(h.builds.get("c-1"), 4);
  } finally {
    await h.close();
  }
});

Deno.test("an actor failing as it starts rejects its get, is counted, and leaves the others be", async () => {
  const h = await harness({ restart: () => true }, { failOnStart: new Set(["bad"]) });
  try {
    const good = await h.registry.get(h.kind, "good");
    await assert.rejects(h.registry.get(h.kind, "bad"), /Corrupt state/);
    assert.equal(h.registry.has(h.kind, "bad"), false);
    assert.equal(await h.failures(), 1);
    // A failure while starting is not restarted: the caller got the error.
    assert.equal(h.builds.get("bad"), 1);
    good.send({ type: "ping" });
    assert.equal(good.getSnapshot().context.pings, 1);
  } finally {
    await h.close();
  }
});

/** An actor that ends itself on `done`, or when asked with `quit`; its context tells a timer. */
const ending = setup({
  types: {
    context: {} as { id: string; dueAt: number },
    events: {} as { type: "done" } | { type: "quit" },
    input: {} as { id: string },
  },
}).createMachine({
  context: ({ input }) => ({ id: input.id, dueAt: 1_000 }),
  initial: "running",
  states: {
    running: { on: { done: "finished", quit: "finished" } },
    finished: { type: "final" },
  },
});

Deno.test("an actor reaching its final state is forgotten, and a kind may say how to stop and inspect its actors", async () => {
  const registry = createRegistry();
  const asked: string[] = [];
  registry.define(
    "user",
    (id) => Promise.resolve(createActor(ending, { input: { id } })),
    {
      stop(actor) {
        asked.push(actor.getSnapshot().context.id);
        actor.send({ type: "quit" });
      },
      timers: (snapshot) => [{
        id: "wake",
        event: "wake up",
        dueAt: (snapshot.context as { dueAt: number }).dueAt,
      }],
    },
  );
  try {
    const passive = await registry.get("user", "passive");
    passive.send({ type: "done" });
    assert.equal(registry.has("user", "passive"), false);
    assert.deepEqual(registry.list(), []);
    assert.equal(registry.counts().user, 0);

    const stopped = await registry.get("user", "stopped");
    assert.deepEqual(registry.inspect("user", "stopped")!.timers, [{
      id: "wake",
      event: "wake up",
      delay_ms: 0,
      due_at: new Date(1_000).toISOString(),
    }]);
    registry.stop("user", "stopped");
    assert.deepEqual(asked, ["stopped"]);
    assert.equal(stopped.getSnapshot().status, "done");
    assert.equal(registry.has("user", "stopped"), false);
    // Rebuilt on the next get.
    assert.equal((await registry.get("user", "passive")).getSnapshot().status, "active");
  } finally {
    registry.stopAll();
  }
});

Deno.test("a kind is told when its actors end, failed or done, and a handler that throws changes nothing", async () => {
  const registry = createRegistry();
  const told: string[] = [];
  registry.define("user", (id) => Promise.resolve(createActor(ending, { input: { id } })), {
    ended(id, failed) {
      told.push(`${id} ${failed ? "failed" : "done"}`);
      if (id === "thrower") throw new Error("The end handler broke");
    },
  });
  registry.define(
    "conversation",
    (id) => Promise.resolve(createActor(machine, { input: { id } })),
    {
      ended: (id, failed) => told.push(`${id} ${failed ? "failed" : "done"}`),
    },
  );
  try {
    (await registry.get("user", "passive")).send({ type: "done" });
    (await registry.get("user", "thrower")).send({ type: "done" });
    // A handler that throws changes nothing: the actor is forgotten all the same.
    assert.equal(registry.has("user", "thrower"), false);
    (await registry.get("conversation", "broken")).send({ type: "boom" });
    assert.deepEqual(told, [
      "passive done",
      "thrower done",
      "broken failed",
    ]);
    assert.equal(registry.has("conversation", "broken"), false);
  } finally {
    registry.stopAll();
  }
});
