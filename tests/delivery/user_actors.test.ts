/** User actors share XState systems a few at a time, and stop and fail one by one. */

import assert from "node:assert/strict";
import type { AnyActorRef } from "xstate";
import { USER_ACTORS_PER_SYSTEM } from "../../src/delivery/user_actors.ts";
import { eventually, startServer } from "../_support/server.ts";

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

Deno.test("a user actor in a shared system stops through the registry with its timers, alone", async () => {
  const server = await startServer();
  try {
    const { registry } = server.relais;
    const gone = await registry.get("user", "gone");
    const stays = await registry.get("user", "stays");
    assert.equal(gone.system, stays.system);
    for (const [actor, connId] of [[gone, "c1"], [stays, "c2"]] as const) {
      actor.send({ type: "conn.open", connId });
      actor.send({ type: "conn.close", connId });
    }
    // Offline: each waits to passivate on a timer of the shared system.
    await eventually(() => registry.inspect("user", "gone")!.timers.length > 0, 2000, "timer");
    assert.ok(registry.inspect("user", "stays")!.timers.length > 0);
    registry.stop("user", "gone");
    assert.equal(gone.getSnapshot().status, "stopped");
    assert.equal(registry.peek("user", "gone"), undefined);
    const scheduled = Object.values(gone.system.getSnapshot()._scheduledEvents) as {
      source: { sessionId: string };
    }[];
    assert.ok(!scheduled.some((t) => t.source.sessionId === gone.sessionId), "timer left");
    assert.ok(scheduled.some((t) => t.source.sessionId === stays.sessionId), "other timer lost");
    assert.equal(stays.getSnapshot().status, "active");
    // The next message rebuilds it.
    const again = await registry.get("user", "gone");
    assert.notEqual(again, gone);
    assert.equal(again.getSnapshot().status, "active");
  } finally {
    await server.close();
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
    broken.send({ type: "item.deliver" });
    await eventually(() => registry.peek("user", "broken") === undefined, 2000, "forgotten");
    assert.equal(broken.getSnapshot().status, "error");
    assert.equal(neighbour.getSnapshot().status, "active");
    const rebuilt = await registry.get("user", "broken");
    assert.equal(rebuilt.getSnapshot().status, "active");
  } finally {
    await server.close();
  }
});
