import assert from "node:assert/strict";
import { createKvStore } from "../../src/store/kv_store.ts";
import * as keys from "../../src/store/keys.ts";
import type { Envelope } from "../../src/schemas/envelope.ts";
import type { PublishResult, Store } from "../../src/store/store.ts";

function makeEnvelope(
  type: Envelope["metadata"]["type"] = "NOTIFICATION",
  options: { ack?: boolean; payload?: Record<string, unknown> } = {},
): Envelope {
  return {
    metadata: {
      id: crypto.randomUUID(),
      priority: "NORMAL",
      type,
      emitter: "test",
      source: "feedback",
      topic: "t",
    },
    payload: options.payload ?? { n: 1 },
    routing: {
      audience: { type: "USER", targets: [] },
      channels: ["inapp"],
      retry: { ack_required: options.ack ?? false, enabled: true, limit: 3, backoff: "FIXED" },
    },
  };
}

const result = (e: Envelope, targeted: number): PublishResult => ({
  id: e.metadata.id,
  accepted_at: new Date().toISOString(),
  targeted,
  unknown_targets: [],
});

async function withStore(fn: (store: Store, kv: Deno.Kv) => Promise<void>) {
  const kv = await Deno.openKv(":memory:");
  try {
    await fn(createKvStore(kv, { recentWindowMs: 60_000 }), kv);
  } finally {
    kv.close();
  }
}

async function publish(store: Store, targets: string[], e = makeEnvelope()) {
  await store.createEvent(e, targets, result(e, targets.length));
  await store.runFanout(e.metadata.id, () => {});
  return e;
}

Deno.test("kv store gives each user contiguous seqs under concurrent publishes", async () => {
  await withStore(async (store) => {
    const users = ["a", "b", "c"];
    await Promise.all(Array.from({ length: 30 }, (_, i) => publish(store, [users[i % 3], "all"])));
    for (const user of [...users, "all"]) {
      const read = await store.readStream(user, 0, {
        limit: 100,
        windowMs: 60_000,
        now: Date.now(),
      });
      const expected = user === "all" ? 30 : 10;
      assert.equal(read.last, expected);
      assert.deepEqual(
        read.items.map((i) => i.seq),
        Array.from({ length: expected }, (_, i) => i + 1),
      );
      assert.equal(new Set(read.items.map((i) => i.id)).size, expected);
      assert.equal(read.complete, true);
    }
  });
});

Deno.test("kv store resumes an interrupted fan-out without duplicates or losses", async () => {
  await withStore(async (store) => {
    const users = Array.from({ length: 2500 }, (_, i) => `user-${i}`);
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    await store.createEvent(e, users, result(e, users.length));
    let batches = 0;
    await assert.rejects(
      store.runFanout(e.metadata.id, () => {
        if (++batches === 3) throw new Error("crash");
      }),
      /crash/,
    );
    assert.deepEqual(await store.unfinishedFanouts(), [e.metadata.id]);
    assert.equal((await store.getStatus(e.metadata.id))!.fan_out, "running");
    await store.runFanout(e.metadata.id, () => {});
    assert.deepEqual(await store.unfinishedFanouts(), []);
    for (const user of [users[0], users[500], users[1000], users[2499]]) {
      assert.equal(await store.lastSeq(user), 1, user);
      assert.equal((await store.listPending(user)).length, 1);
    }
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.fan_out, "done");
    assert.equal(status.targeted, 2500);
  });
});

Deno.test("kv store reports a resume as incomplete when an item is gone", async () => {
  await withStore(async (store, kv) => {
    for (let i = 0; i < 4; i++) await publish(store, ["u"]);
    await kv.delete(keys.streamKey("u", 2));
    const read = await store.readStream("u", 0, { limit: 10, windowMs: 60_000, now: Date.now() });
    assert.deepEqual(read.items.map((i) => i.seq), [1, 3, 4]);
    assert.equal(read.complete, false);
    const tail = await store.readStream("u", 2, { limit: 10, windowMs: 60_000, now: Date.now() });
    assert.equal(tail.complete, true);
    const cut = await store.readStream("u", 0, { limit: 1, windowMs: 60_000, now: Date.now() });
    assert.equal(cut.complete, false, "a limit that cuts the replay short is reported");
    const ahead = await store.readStream("u", 9, { limit: 10, windowMs: 60_000, now: Date.now() });
    assert.equal(ahead.complete, false, "a client ahead of the server cannot be served");
  });
});

Deno.test("kv store round-trips a 64 KiB payload of multi-byte text", async () => {
  await withStore(async (store, kv) => {
    const text = "a".repeat(29_999) + "é€😀".repeat(4000) + "a".repeat(10_000);
    const e = makeEnvelope("NOTIFICATION", { payload: { text } });
    await publish(store, ["u"], e);
    // A second store on the same KV has no cache: the body is read back from its chunks.
    const fresh = createKvStore(kv, { recentWindowMs: 60_000 });
    const envelope = await fresh.getEnvelope(e.metadata.id);
    assert.equal((envelope!.payload as { text: string }).text, text);
    assert.ok((await fresh.getEvent(e.metadata.id))!.chunks > 1);
  });
});

Deno.test("kv store counts an ack once, however often it is repeated", async () => {
  await withStore(async (store) => {
    const e = await publish(store, ["a", "b"], makeEnvelope("NOTIFICATION", { ack: true }));
    assert.equal(await store.ack("a", e.metadata.id, Date.now()), true);
    assert.equal(await store.ack("a", e.metadata.id, Date.now()), true);
    assert.equal(await store.ack("nobody", e.metadata.id, Date.now()), false);
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.acked, 1);
    assert.equal(status.delivered, 1);
    assert.deepEqual(status.pending_users, ["b"]);
    assert.equal(status.acked_all, false);
    assert.deepEqual(await store.listPending("a"), []);
  });
});

Deno.test("kv store keeps the inbox unread count in step with reads", async () => {
  await withStore(async (store) => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await publish(store, ["u"])).metadata.id);
    await publish(store, ["u"], makeEnvelope("REALTIME"));
    const now = Date.now();
    assert.equal(await store.unreadCount("u", now), 3);
    assert.equal(await store.markRead("u", ids[1], now), true);
    assert.equal(await store.markRead("u", "missing", now), false);
    const unread = await store.listInbox("u", { limit: 10, unreadOnly: true, now });
    assert.deepEqual(unread.items.map((i) => i.id), [ids[2], ids[0]]);
    const all = await store.listInbox("u", { limit: 2, unreadOnly: false, now });
    assert.deepEqual(all.items.map((i) => i.id), [ids[2], ids[1]], "newest first, no REALTIME");
    assert.equal(all.next, all.items[1].seq);
    assert.equal(await store.markAllRead("u", now), 2);
    assert.equal(await store.unreadCount("u", now), 0);
  });
});

Deno.test("kv store gives a ticket out once", async () => {
  await withStore(async (store) => {
    const record = {
      principal: { kind: "user" as const, id: "u", roles: [], structures: [] },
      expiresAt: Date.now() + 60_000,
    };
    await store.putTicket("h", record);
    const taken = await Promise.all([store.takeTicket("h"), store.takeTicket("h")]);
    assert.equal(taken.filter(Boolean).length, 1);
    assert.equal(await store.takeTicket("h"), undefined);
  });
});

Deno.test("kv store counts a delivery once when it is recorded twice", async () => {
  await withStore(async (store) => {
    const e = await publish(store, ["a", "b", "c"], makeEnvelope("NOTIFICATION", { ack: true }));
    const id = e.metadata.id;
    const now = Date.now();
    await store.markDelivered([{ id, user: "a" }, { id, user: "a" }, { id, user: "b" }], now);
    await store.markDelivered([{ id, user: "a" }], now);
    const status = (await store.getStatus(id))!;
    assert.equal(status.delivered, 2);
    assert.deepEqual(status.pending_users, ["a", "b", "c"], "delivered is not acked");
  });
});
