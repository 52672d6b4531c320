/** The contract of the stream port: contiguous seqs, resumes, lookups. */

import assert from "node:assert/strict";
import type { Store } from "../../../src/store/store.ts";
import { makeEnvelope, result } from "../../_support/store.ts";
import { type Contract, contractTest, expiringSoon, publish, readAll } from "./_harness.ts";

/** Asserts `user`'s stream holds `expected` distinct items with seqs 1 to `expected`. */
async function assertContiguous(store: Store, user: string, expected: number) {
  const read = await store.readStream(user, 0, { limit: 100, windowMs: 60_000, now: Date.now() });
  assert.equal(read.last, expected, user);
  assert.deepEqual(read.items.map((i) => i.seq), Array.from({ length: expected }, (_, i) => i + 1));
  assert.equal(new Set(read.items.map((i) => i.id)).size, expected);
  assert.equal(read.complete, true);
}

/** Registers the stream port's contract tests for one adapter. */
export function streamStoreContract(contract: Contract): void {
  const test = (behaviour: string, fn: Parameters<typeof contractTest>[2]) =>
    contractTest(contract, behaviour, fn);

  test("gives each user contiguous seqs under concurrent publishes", async (store) => {
    const users = ["a", "b", "c"];
    await Promise.all(Array.from({ length: 30 }, (_, i) => publish(store, [users[i % 3], "all"])));
    for (const user of [...users, "all"]) {
      await assertContiguous(store, user, user === "all" ? 30 : 10);
    }
  });

  test("keeps seqs contiguous when one-commit publishes race", async (store) => {
    await Promise.all(
      Array.from({ length: 30 }, (_, i) => {
        if (i % 5 === 0) return publish(store, ["a", "b"]);
        const e = makeEnvelope();
        return store.publishAtomic(e, ["a", i % 2 ? "b" : "c"], result(e, 2));
      }),
    );
    for (const [user, expected] of [["a", 30], ["b", 18], ["c", 12]] as const) {
      await assertContiguous(store, user, expected);
    }
  });

  test("keeps seqs contiguous when publishes interleave with a fan-out job", async (store) => {
    const targets = Array.from({ length: 400 }, (_, i) => `u${i}`);
    const e = makeEnvelope("REALTIME");
    await store.createEvent(e, targets, result(e, targets.length));
    const others: Promise<unknown>[] = [];
    let batches = 0;
    await store.runFanout(e.metadata.id, () => {
      // After each committed batch, one-commit publishes to users of every batch.
      batches++;
      for (const user of ["u0", "u150", "u399"]) {
        const other = makeEnvelope();
        others.push(store.publishAtomic(other, [user], result(other, 1)));
      }
    });
    await Promise.all(others);
    for (const user of ["u0", "u150", "u399"]) await assertContiguous(store, user, batches + 1);
    await assertContiguous(store, "u200", 1);
    assert.equal((await store.getStatus(e.metadata.id))?.fan_out, "done");
  });

  test("reports a resume it cannot serve in full as incomplete", async (store) => {
    for (let i = 0; i < 4; i++) await publish(store, ["u"]);
    const now = Date.now();
    const tail = await store.readStream("u", 2, { limit: 10, windowMs: 60_000, now });
    assert.deepEqual(tail.items.map((i) => i.seq), [3, 4]);
    assert.equal(tail.complete, true);
    const cut = await store.readStream("u", 0, { limit: 1, windowMs: 60_000, now });
    assert.equal(cut.complete, false, "a limit that cuts the replay short is reported");
    assert.deepEqual(cut.items.map((i) => i.seq), [1]);
    const ahead = await store.readStream("u", 9, { limit: 10, windowMs: 60_000, now });
    assert.equal(ahead.complete, false, "a client ahead of the server cannot be served");
    assert.deepEqual(ahead.items, []);
    assert.equal(ahead.last, 4);
    const fresh = await store.readStream("nobody", 0, { limit: 10, windowMs: 60_000, now });
    assert.deepEqual(fresh, { items: [], last: 0, complete: true });
  });

  test("serves items that are not durable within the recent window only", async (store) => {
    const durable = await publish(store, ["u"]);
    const realtime = await publish(store, ["u"], makeEnvelope("REALTIME"));
    const now = Date.now();
    const within = await store.readStream("u", 0, { limit: 10, windowMs: 60_000, now });
    assert.deepEqual(within.items.map((i) => i.id), [durable.metadata.id, realtime.metadata.id]);
    assert.equal(within.complete, true);
    const later = await store.readStream("u", 0, { limit: 10, windowMs: 1_000, now: now + 5_000 });
    assert.deepEqual(later.items.map((i) => i.id), [durable.metadata.id]);
    assert.equal(later.complete, false, "the window moved past an item");
    assert.equal(later.last, 2);
  });

  test("skips expired items without reporting a loss", async (store) => {
    const expiring = expiringSoon();
    await publish(store, ["u"], expiring);
    const kept = await publish(store, ["u"]);
    const later = Date.now() + 2_000;
    const read = await store.readStream("u", 0, { limit: 10, windowMs: 60_000, now: later });
    assert.deepEqual(read.items.map((i) => i.id), [kept.metadata.id]);
    assert.equal(read.complete, true);
    assert.equal(
      (await store.findItem("u", expiring.metadata.id))?.exp,
      Date.parse(expiring.metadata.expiration!),
    );
  });

  test("finds a durable item by its event id", async (store) => {
    const durable = await publish(store, ["u"], makeEnvelope("NOTIFICATION", { ack: true }));
    const realtime = await publish(store, ["u"], makeEnvelope("REALTIME"));
    const item = await store.findItem("u", durable.metadata.id);
    assert.equal(item?.seq, 1);
    assert.equal(item?.type, "NOTIFICATION");
    assert.equal(item?.durable, true);
    assert.equal(item?.ack, true);
    assert.equal(await store.findItem("u", realtime.metadata.id), undefined, "not durable");
    assert.equal(await store.findItem("other", durable.metadata.id), undefined);
    assert.deepEqual((await readAll(store, "u")).items.map((i) => i.durable), [true, false]);
  });
}
