import assert from "node:assert/strict";
import { createKvStore } from "../../src/store/kv_store.ts";
import * as keys from "../../src/store/keys.ts";
import { FANOUT_BATCH } from "../../src/store/kv/fanout.ts";
import { makeEnvelope, result, withStore } from "../_support/store.ts";
import { storeContract } from "./_contract.ts";
import { publish } from "./contract/_harness.ts";

storeContract({
  name: "kv store",
  atomicTargets: FANOUT_BATCH,
  async open() {
    const kv = await Deno.openKv(":memory:");
    return {
      store: createKvStore(kv, { recentWindowMs: 60_000 }),
      async mailTasks() {
        const ids: string[] = [];
        for await (const t of kv.list({ prefix: keys.mailTaskPrefix() })) {
          ids.push(t.key[2] as string);
        }
        return ids;
      },
      close: () => kv.close(),
    };
  },
});

// What follows depends on KV itself: its keys, its commit limits, its chunked bodies.

Deno.test("kv store reports a resume as incomplete when an item is gone", async () => {
  await withStore(async (store, kv) => {
    for (let i = 0; i < 4; i++) await publish(store, ["u"]);
    await kv.delete(keys.streamKey("u", 2));
    const read = await store.readStream("u", 0, { limit: 10, windowMs: 60_000, now: Date.now() });
    assert.deepEqual(read.items.map((i) => i.seq), [1, 3, 4]);
    assert.equal(read.complete, false);
    const tail = await store.readStream("u", 2, { limit: 10, windowMs: 60_000, now: Date.now() });
    assert.equal(tail.complete, true);
  });
});

Deno.test("kv store reads a 64 KiB body back from its chunks without its cache", async () => {
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

Deno.test("kv store writes no job key for a one-commit publish", async () => {
  await withStore(async (store, kv) => {
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    const published = await store.publishAtomic(e, ["a", "b"], result(e, 2));
    assert.equal(published?.created, true);
    assert.equal((await kv.get(keys.jobKey(e.metadata.id))).value, null);
  });
});

Deno.test("kv store writes a target record for durable items only, on both publish paths", async () => {
  await withStore(async (store, kv) => {
    const targetsOf = async (id: string) =>
      (await Array.fromAsync(kv.list({ prefix: keys.targetPrefix(id) }))).length;
    const users = Array.from({ length: 150 }, (_, i) => `u${i}`);
    for (const [type, expected] of [["REALTIME", 0], ["NOTIFICATION", users.length]] as const) {
      const small = makeEnvelope(type);
      await store.publishAtomic(small, users.slice(0, 3), result(small, 3));
      assert.equal(await targetsOf(small.metadata.id), Math.min(expected, 3), `${type} one-commit`);
      const large = makeEnvelope(type);
      const { event } = await store.createEvent(large, users, result(large, users.length));
      await store.runFanout(event.id, () => {});
      assert.equal(await targetsOf(large.metadata.id), expected, `${type} job`);
    }
  });
});

Deno.test("kv store leaves audiences too large for one commit to the job path", async () => {
  await withStore(async (store, kv) => {
    const e = makeEnvelope("REALTIME");
    const users = Array.from({ length: 91 }, (_, i) => `u${i}`);
    assert.equal(await store.publishAtomic(e, users, result(e, 91)), undefined);
    const long = Array.from({ length: 60 }, (_, i) => `${"y".repeat(190)}${i}`);
    assert.equal(await store.publishAtomic(e, long, result(e, 60)), undefined);
    const planned = await store.publishAtomic(e, users.slice(0, 41), result(e, 41), {
      plan: (targets) => Promise.resolve(targets.map(() => ({ quiet: false }))),
    });
    assert.equal(planned, undefined);
    assert.equal(await store.publishAtomic(e, [], result(e, 0)), undefined);
    assert.equal((await kv.get(keys.eventKey(e.metadata.id))).value, null);
    assert.equal(await store.lastSeq("u0"), 0);
    const fits = await store.publishAtomic(e, users.slice(0, 90), result(e, 90));
    assert.equal(fits?.batch?.items.length, 90);
  });
});

Deno.test("kv store commits the widest one-commit publish its budget lets through", async () => {
  await withStore(async (store) => {
    // 40 users with long ids, each getting an ack, a mail task and a collapse
    // replacement: the most keys per target the one-commit path writes.
    const users = Array.from({ length: 40 }, (_, i) => `${"u".repeat(70)}${1000 + i}`);
    const plan = (targets: string[]) =>
      Promise.resolve(targets.map(() => ({ quiet: false, mailAt: 5 })));
    for (let round = 0; round < 2; round++) {
      const base = makeEnvelope("NOTIFICATION", {
        ack: true,
        payload: { text: "é".repeat(60_000) },
      });
      const e = { ...base, metadata: { ...base.metadata, collapse_key: "c".repeat(20) } };
      const published = await store.publishAtomic(e, users, result(e, 40), { plan });
      assert.equal(published?.created, true);
      assert.equal(published.batch?.items.filter((i) => i.replaces).length, round ? 40 : 0);
    }
  });
});

/** A KV handle that counts commits (and failed ones) and can run a hook before each. */
function instrumented(kv: Deno.Kv, beforeCommit: () => Promise<void> = () => Promise.resolve()) {
  const counts = { commits: 0, failed: 0 };
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = async () => {
            counts.commits++;
            await beforeCommit();
            const res = await commit();
            if (!res.ok) counts.failed++;
            return res;
          };
          return op;
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: proxy, counts };
}

Deno.test("kv store groups concurrent one-commit publishes into fewer commits", async () => {
  await withStore(async (_, raw) => {
    const { kv, counts } = instrumented(raw);
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const events = Array.from({ length: 20 }, () => makeEnvelope("NOTIFICATION", { ack: true }));
    const published = await Promise.all(
      events.map((e, i) => store.publishAtomic(e, [`u${i}`, `v${i}`], result(e, 2))),
    );
    assert.ok(published.every((p) => p?.created));
    assert.ok(counts.commits < 20, `${counts.commits} commits`);
    for (let i = 0; i < 20; i++) {
      assert.equal((await store.findItem(`u${i}`, events[i].metadata.id))?.seq, 1);
      assert.equal((await store.findItem(`v${i}`, events[i].metadata.id))?.seq, 1);
      assert.equal((await store.listPending(`v${i}`)).length, 1);
    }
  });
});

Deno.test("kv store commits the rest of a group when one member's seq went stale", async () => {
  await withStore(async (_, raw) => {
    // Once the publishes have read their seqs, another writer moves u3's.
    let raced = false;
    const { kv, counts } = instrumented(raw, async () => {
      if (raced) return;
      raced = true;
      await raw.set(keys.seqKey("u3"), 7);
    });
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const events = Array.from({ length: 6 }, () => makeEnvelope());
    const published = await Promise.all(
      events.map((e, i) => store.publishAtomic(e, [`u${i}`], result(e, 1))),
    );
    assert.ok(published.every((p) => p?.created));
    assert.equal(await store.lastSeq("u3"), 8);
    assert.equal((await store.findItem("u3", events[3].metadata.id))?.seq, 8);
    for (const i of [0, 1, 2, 4, 5]) assert.equal(await store.lastSeq(`u${i}`), 1);
    assert.ok(counts.failed >= 1, "no commit saw the stale seq");
  });
});
