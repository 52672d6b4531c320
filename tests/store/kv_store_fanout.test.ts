/** The job fan-out reads ahead between commits; deliveries are recorded many per commit. */

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

Deno.test("kv store records more deliveries than one commit checks, each once", async () => {
  await withStore(async (store) => {
    const targets = users(250);
    const e = makeEnvelope();
    const id = e.metadata.id;
    await store.createEvent(e, targets, result(e, targets.length));
    await store.runFanout(id, () => {});
    const now = Date.now();
    const entries = targets.flatMap((user) => [{ id, user }, { id, user }]);
    await store.markDelivered(entries, now);
    let status = await store.getStatus(id);
    assert.equal(status?.delivered, 250);
    assert.deepEqual(status?.pending_users, []);
    await store.markDelivered(targets.slice(0, 120).map((user) => ({ id, user })), now);
    status = await store.getStatus(id);
    assert.equal(status?.delivered, 250);
  });
});

Deno.test("kv store fan-out writes users with the longest ids in smaller batches", async () => {
  await withStore(async (store) => {
    // 200-character user and event ids (the schema's maximum): 90 users of
    // several keys each would pass KV's total key size per commit.
    for (const [type, ack] of [["REALTIME", false], ["NOTIFICATION", true]] as const) {
      const targets = Array.from({ length: 200 }, (_, i) => `${type}-${i}-`.padEnd(200, "x"));
      const e = makeEnvelope();
      e.metadata.id = type.padEnd(200, "-");
      e.metadata.type = type;
      e.routing.retry.ack_required = ack;
      await store.createEvent(e, targets, result(e, targets.length));
      const batches: FanoutBatch[] = [];
      await store.runFanout(e.metadata.id, (batch) => void batches.push(batch));
      assert.equal(batches.flatMap((b) => b.items).length, 200, type);
      for (const user of [targets[0], targets[199]]) assert.equal(await store.lastSeq(user), 1);
      assert.equal((await store.getStatus(e.metadata.id))!.fan_out, "done");
    }
  });
});
