import assert from "node:assert/strict";
import { createKvPushStore } from "../../src/push/kv_push_store.ts";
import type { PushSubscriptionRecord } from "../../src/push/subscription.ts";
import { ignoreRedis, openRedisKv } from "../_support/redis_kv.ts";

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

/** The databases the push store runs on: Deno KV, and Redis in cluster mode. */
const DATABASES = [
  { name: "deno kv", open: () => Deno.openKv(":memory:"), ignore: false },
  { name: "redis kv", open: () => Promise.resolve(openRedisKv()), ignore: ignoreRedis },
];

/** Every endpoint index entry, endpoint id → user. */
async function endpointIndex(kv: Deno.Kv) {
  const out = new Map<string, string>();
  for await (const e of kv.list<string>({ prefix: ["push_endpoint"] })) {
    out.set(e.key[1] as string, e.value);
  }
  return out;
}

for (const db of DATABASES) {
  Deno.test({
    name:
      `push store on ${db.name}: an endpoint another user registers moves to them, index and marker included`,
    ignore: db.ignore,
    async fn() {
      const kv = await db.open();
      try {
        const store = createKvPushStore(kv);
        await store.putSubscription("ana", sub("shared", 1), 5);
        await store.putSubscription("ana", sub("laptop", 2), 5);
        assert.equal(await store.endpointHolder("shared"), "ana");
        // A shared browser: ben registers it; it leaves ana, who keeps her other one.
        await store.putSubscription("ben", sub("shared", 3), 5);
        assert.deepEqual((await store.listSubscriptions("ana")).map((s) => s.id), ["laptop"]);
        assert.deepEqual((await store.listSubscriptions("ben")).map((s) => s.id), ["shared"]);
        assert.equal(await store.getSubscription("ana", "shared"), undefined);
        assert.equal(await store.endpointHolder("shared"), "ben");
        // Ben's only one moves back: his marker goes with it.
        await store.putSubscription("ana", sub("shared", 4), 5);
        assert.deepEqual(await store.withSubscriptions(["ana", "ben"]), new Set(["ana"]));
        assert.deepEqual(
          await endpointIndex(kv),
          new Map([["shared", "ana"], ["laptop", "ana"]]),
        );
        // Erasing the user it left takes nothing of hers.
        await store.eraseUser("ben");
        assert.equal(await store.endpointHolder("shared"), "ana");
      } finally {
        kv.close();
      }
    },
  });

  Deno.test({
    name:
      `push store on ${db.name}: users racing for one endpoint leave it under exactly one of them`,
    ignore: db.ignore,
    async fn() {
      const kv = await db.open();
      try {
        const store = createKvPushStore(kv);
        const users = ["ana", "ben", "cleo"];
        await Promise.all(
          Array.from({ length: 6 }, (_, i) => store.putSubscription(users[i % 3], sub("e", i), 5)),
        );
        const holders = [];
        for (const user of users) {
          if ((await store.listSubscriptions(user)).length > 0) holders.push(user);
        }
        assert.equal(holders.length, 1, `held by ${holders.join(", ")}`);
        assert.equal(await store.endpointHolder("e"), holders[0]);
        assert.deepEqual(await store.withSubscriptions(users), new Set(holders));
      } finally {
        kv.close();
      }
    },
  });

  Deno.test({
    name: `push store on ${db.name}: the endpoint index follows removal, pruning and erasure`,
    ignore: db.ignore,
    async fn() {
      const kv = await db.open();
      try {
        const store = createKvPushStore(kv);
        await store.putSubscription("ana", sub("a1", 1), 2);
        await store.putSubscription("ana", sub("a2", 2), 2);
        // Past the cap of two, the oldest goes, and its index entry with it.
        await store.putSubscription("ana", sub("a3", 3), 2);
        assert.deepEqual(await endpointIndex(kv), new Map([["a2", "ana"], ["a3", "ana"]]));
        assert.equal(await store.removeSubscription("ana", "a2"), true);
        assert.deepEqual(await endpointIndex(kv), new Map([["a3", "ana"]]));
        await store.putSubscription("ben", sub("b1", 4), 2);
        const erased = await store.eraseUser("ana");
        assert.equal(erased.subscriptions, 1);
        assert.deepEqual(await endpointIndex(kv), new Map([["b1", "ben"]]));
        // The export's shape is the same: the index is not part of it.
        assert.deepEqual(Object.keys(await store.ofUser("ben")), ["subscriptions", "tasks"]);
      } finally {
        kv.close();
      }
    },
  });

  Deno.test({
    name:
      `push store on ${db.name}: a subscription saved before the index is indexed once registered again`,
    ignore: db.ignore,
    async fn() {
      const kv = await db.open();
      try {
        const store = createKvPushStore(kv);
        // As the store wrote it before endpoints were indexed: ana and ben both hold "old".
        for (const user of ["ana", "ben"]) {
          await kv.set(["push_sub", user, "old"], sub("old", 1));
          await kv.set(["push_user", user], true);
        }
        assert.equal(await store.endpointHolder("old"), undefined);
        // Ben's browser registers again: the index names him; ana's copy is found only
        // when a push for it runs (the pusher drops it then).
        await store.putSubscription("ben", sub("old", 2), 5);
        assert.equal(await store.endpointHolder("old"), "ben");
        // Ana's copy goes without taking ben's index entry.
        assert.equal(await store.removeSubscription("ana", "old"), true);
        assert.equal(await store.endpointHolder("old"), "ben");
        assert.deepEqual(await store.withSubscriptions(["ana", "ben"]), new Set(["ben"]));
      } finally {
        kv.close();
      }
    },
  });
}
