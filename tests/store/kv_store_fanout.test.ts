/** The KV job fan-out reads the next batch's seqs ahead, during the current commit. */

import assert from "node:assert/strict";
import { FANOUT_BATCH_MAX } from "../../src/store/kv/fanout.ts";
import { kvBudgetsOf } from "../../src/store/kv/limits.ts";
import * as keys from "../../src/store/keys.ts";
import type { FanoutBatch } from "../../src/store/store.ts";
import { makeEnvelope as storeEnvelope, result, withStore } from "../_support/store.ts";

const makeEnvelope = () => storeEnvelope("REALTIME");

const users = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);

Deno.test("kv store fan-out keeps seqs right when a read-ahead user's seq moves meanwhile", async () => {
  await withStore(async (store, kv) => {
    // Four batches at least, whatever the database's batch size.
    const targets = users(4 * Math.min(FANOUT_BATCH_MAX, kvBudgetsOf(kv).checks));
    const e = makeEnvelope();
    await store.createEvent(e, targets, result(e, targets.length));
    const batches: FanoutBatch[] = [];
    // Between the first commit and the second batch, another writer gives a user of the
    // second batch (read ahead during the first commit) three items.
    let moved: { user: string; written: Promise<unknown> } | undefined;
    await store.runFanout(e.metadata.id, (batch) => {
      batches.push(batch);
      if (moved) return;
      const user = `u${batch.items.length + 2}`;
      moved = { user, written: kv.set(keys.seqKey(user), 3) };
    });
    await moved!.written;
    const { user } = moved!;
    const items = batches.flatMap((b) => b.items);
    assert.equal(items.length, targets.length);
    assert.deepEqual(new Set(items.map((i) => i.user)).size, targets.length);
    assert.equal(items.find((i) => i.user === user)!.item.seq, 4);
    assert.ok(items.filter((i) => i.user !== user).every((i) => i.item.seq === 1));
    assert.equal(await store.lastSeq(user), 4);
    assert.equal(await store.lastSeq(targets.at(-1)!), 1);
    assert.ok(batches.length >= 4, "several batches");
    const status = await store.getStatus(e.metadata.id);
    assert.equal(status?.fan_out, "done");
    assert.equal((await kv.get(keys.jobKey(e.metadata.id))).value, null);
  });
});
