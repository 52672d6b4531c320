import assert from "node:assert/strict";
import { createKvPushStore } from "../../src/push/kv_push_store.ts";
import type { PushSubscriptionRecord } from "../../src/push/subscription.ts";

const sub = (id: string, createdAt: number): PushSubscriptionRecord => ({
  id,
  endpoint: `https://fcm.googleapis.com/fcm/send/${id}`,
  keys: { p256dh: "p", auth: "a" },
  createdAt,
});

Deno.test("push store knows who has a subscription: set by the first, gone with the last or on erasure", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createKvPushStore(kv);
    const everyone = ["ana", "ben", "constructor", "__proto__"];
    assert.deepEqual(await store.withSubscriptions(everyone), new Set());
    await store.putSubscription("ana", sub("s1", 1), 5);
    await store.putSubscription("ana", sub("s2", 2), 5);
    await store.putSubscription("constructor", sub("s3", 3), 5);
    assert.deepEqual(await store.withSubscriptions(everyone), new Set(["ana", "constructor"]));
    // One of two gone: still subscribed; the last one gone: not any more.
    assert.equal(await store.removeSubscription("ana", "s1"), true);
    assert.deepEqual(await store.withSubscriptions(["ana"]), new Set(["ana"]));
    assert.equal(await store.removeSubscription("ana", "s2"), true);
    assert.equal(await store.removeSubscription("ana", "s2"), false);
    assert.deepEqual(await store.withSubscriptions(everyone), new Set(["constructor"]));
    // Pruned by the cap of one: the marker stays with the newest.
    await store.putSubscription("ben", sub("s4", 4), 1);
    await store.putSubscription("ben", sub("s5", 5), 1);
    assert.deepEqual((await store.listSubscriptions("ben")).map((s) => s.id), ["s5"]);
    assert.ok((await store.withSubscriptions(["ben"])).has("ben"));
    await store.eraseUser("constructor");
    assert.deepEqual(await store.withSubscriptions(everyone), new Set(["ben"]));
    // More users than one read takes.
    const many = Array.from({ length: 25 }, (_, i) => `u${i}`);
    await store.putSubscription("u17", sub("s6", 6), 5);
    assert.deepEqual(await store.withSubscriptions(many), new Set(["u17"]));
  } finally {
    kv.close();
  }
});
