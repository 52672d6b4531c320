/** The KV job fan-out reads the next batch's seqs ahead, during the current commit. */

import assert from "node:assert/strict";
import { FANOUT_BATCH_MAX } from "../../src/store/kv/fanout.ts";
import { kvBudgetsOf } from "../../src/store/kv/limits.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import { hookedGetMany } from "../_support/reading_kv.ts";
import * as keys from "../../src/store/keys.ts";
import type { FanoutBatch } from "../../src/store/store.ts";
import { makeEnvelope as storeEnvelope, result, withStore } from "../_support/store.ts";

const makeEnvelope = () => storeEnvelope("REALTIME");

const users = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);

Deno.test("kv store fan-out keeps seqs right when a read-ahead user's seq moves meanwhile", async () => {
  await withStore(async (_, raw) => {
    // Four batches at least, whatever the database's batch size: the last user's seq is
    // read ahead, while the batch before it commits.
    const targets = users(4 * Math.min(FANOUT_BATCH_MAX, kvBudgetsOf(raw).checks));
    const user = targets.at(-1)!;
    // Once that read is done, another writer gives the user three items.
    let moved = false;
    const kv = hookedGetMany(raw, async (list, read) => {
      const entries = await read();
      if (!moved && list.some((k) => k[0] === "seq" && k[1] === user)) {
        moved = true;
        await raw.set(keys.seqKey(user), 3);
      }
      return entries;
    });
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const e = makeEnvelope();
    await store.createEvent(e, targets, result(e, targets.length));
    const batches: FanoutBatch[] = [];
    await store.runFanout(e.metadata.id, (batch) => void batches.push(batch));
    assert.ok(moved, "the user's seq was read, then moved");
    const items = batches.flatMap((b) => b.items);
    assert.equal(items.length, targets.length);
    assert.deepEqual(new Set(items.map((i) => i.user)).size, targets.length);
    assert.equal(items.find((i) => i.user === user)!.item.seq, 4);
    assert.ok(items.filter((i) => i.user !== user).every((i) => i.item.seq === 1));
    assert.equal(await store.lastSeq(user), 4);
    assert.equal(await store.lastSeq(targets[0]), 1);
    assert.ok(batches.length >= 4, "several batches");
    const status = await store.getStatus(e.metadata.id);
    assert.equal(status?.fan_out, "done");
    assert.equal((await raw.get(keys.jobKey(e.metadata.id))).value, null);
  });
});

Deno.test("kv store fan-out hands on every committed batch, also when a later read fails", async () => {
  await withStore(async (store, raw) => {
    const targets = users(4 * Math.min(FANOUT_BATCH_MAX, kvBudgetsOf(raw).checks));
    const e = makeEnvelope();
    await store.createEvent(e, targets, result(e, targets.length));
    // The read of the last batch's seqs (ahead, while the batch before it commits) fails
    // as a lost connection would.
    const last = keys.seqKey(targets.at(-1)!);
    const kv = hookedGetMany(
      raw,
      (list, read) =>
        list.some((k) => k[0] === last[0] && k[1] === last[1])
          ? Promise.reject(new Error("connection lost"))
          : read(),
    );
    const handed = new Set<string>();
    await assert.rejects(
      createKvStore(kv, { recentWindowMs: 60_000 }).runFanout(e.metadata.id, (batch) => {
        for (const { user } of batch.items) handed.add(user);
      }),
      /connection lost/,
    );
    assert.ok(handed.size > 0 && !handed.has(targets.at(-1)!));
    // Whatever was written was handed on, the batch committed just before the failure too.
    for (const user of targets) {
      assert.equal(await store.lastSeq(user), handed.has(user) ? 1 : 0, user);
    }
  });
});
