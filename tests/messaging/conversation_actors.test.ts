/**
 * The conversation actors' wiring on the real store and registry: what a caller hears when
 * the conversation cannot answer in time.
 */

import assert from "node:assert/strict";
import { createRegistry } from "../../actors/registry.ts";
import { defineConversationActors } from "../../src/messaging/conversation_actors.ts";
import type { OpResult } from "../../src/messaging/conversation_store.ts";
import { createKvConversationStore } from "../../src/messaging/kv_conversation_store.ts";
import { createHub } from "../../src/realtime/hub.ts";
import { countingKv } from "../_support/counting_kv.ts";

const member = { role: "member" as const, since: 1, read: 0, muted: false, joinedAt: 0 };

Deno.test("each caller of a stuck conversation hears unavailable at its own deadline", async () => {
  const base = await Deno.openKv(":memory:");
  // Every commit after the conversation's creation waits until the test lets it go.
  const held = Promise.withResolvers<void>();
  let stuck = false;
  const { kv } = countingKv(base, () => stuck ? held.promise : undefined);
  const store = createKvConversationStore(kv);
  await store.create(
    { id: "c1", kind: "group", createdAt: 0, createdBy: "service:test", members: ["ana", "ben"] },
    { ana: member, ben: member },
  );
  stuck = true;
  const registry = createRegistry();
  const errors: unknown[] = [];
  const actors = defineConversationActors({
    registry,
    store,
    hub: createHub(),
    limits: { maxMembers: 10, maxMessageLength: 100, typingMs: 50, idleMs: 60_000, maxBatch: 32 },
    users: { deliver: () => {} },
    answerTimeoutMs: 150,
    onError: (_, error) => void errors.push(error),
  });
  try {
    const heard: { name: string; at: number; result: OpResult }[] = [];
    const t0 = performance.now();
    const ask = (name: string, text: string) =>
      actors.submit("c1", { kind: "send", from: "ana", text, clientId: name }).then((result) =>
        void heard.push({ name, at: performance.now() - t0, result })
      );
    const first = ask("first", "un");
    await new Promise((r) => setTimeout(r, 100));
    const second = ask("second", "deux");
    await first;
    assert.deepEqual(heard.map((h) => h.name), ["first"], "the second still waits");
    await second;
    assert.deepEqual(heard.map((h) => h.name), ["first", "second"]);
    for (const { result } of heard) {
      assert.equal(result.ok === false && result.error.code, "unavailable");
    }
    assert.ok(heard[0].at >= 140, `first heard after its 150 ms (${heard[0].at} ms)`);
    assert.ok(heard[1].at >= 240, `second heard after its own 150 ms (${heard[1].at} ms)`);
  } finally {
    stuck = false;
    held.resolve();
    registry.stopAll();
    // The commit let go lands; nothing else is pending (the test's sanitizers check).
    await new Promise((r) => setTimeout(r, 50));
    base.close();
  }
  assert.deepEqual(errors, []);
});
