/** The KV job fan-out reads the next batch's seqs ahead, during the current commit. */

import assert from "node:assert/strict";
import * as keys from "../../src/store/keys.ts";
import type { FanoutBatch } from "../../src/store/store.ts";
import { makeEnvelope as storeEnvelope, result, withStore } from "../_support/store.ts";

const makeEnvelope = () => storeEnvelope("REALTIME");

const users = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);

Deno.test("kv store fan-out keeps seqs right when a read-ahead user's seq moves meanwhile", async () => {
  await withStore(async (store, kv) => {
    const targets = users(400);
    const e = makeEnvelope();
    await store.createEvent(e, targets, result(e, targets.length));
    const batches: FanoutBatch[] = [];
    // Between the first commit and the second batch, another writer gives u100 (in the
    // batch read ahead during the first commit) three items.
    let moved: Promise<unknown> | undefined;
    await store.runFanout(e.metadata.id, (batch) => {
      batches.push(batch);
      moved ??= kv.set(keys.seqKey("u100"), 3);
    });
    await moved;
    const items = batches.flatMap((b) => b.items);
    assert.equal(items.length, 400);
    assert.deepEqual(new Set(items.map((i) => i.user)).size, 400);
    assert.equal(items.find((i) => i.user === "u100")!.item.seq, 4);
    assert.ok(items.filter((i) => i.user !== "u100").every((i) => i.item.seq === 1));
    assert.equal(await store.lastSeq("u100"), 4);
    assert.equal(await store.lastSeq("u399"), 1);
    assert.ok(batches.length >= 4, "several batches");
    const status = await store.getStatus(e.metadata.id);
    assert.equal(status?.fan_out, "done");
    assert.equal((await kv.get(keys.jobKey(e.metadata.id))).value, null);
  });
});
