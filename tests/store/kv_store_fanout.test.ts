/**
 * The KV job fan-out reads the next batch's seqs ahead, during the current commit, and
 * writes a large audience in lanes side by side.
 */

import assert from "node:assert/strict";
import {
  FANOUT_BATCH_MAX,
  FANOUT_LANES,
  type Job,
  LANE_TARGETS_MIN,
  laneKey,
} from "../../src/store/kv/fanout.ts";
import { kvBudgetsOf } from "../../src/store/kv/limits.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import { hookedGetMany } from "../_support/reading_kv.ts";
import * as keys from "../../src/store/keys.ts";
import type { FanoutBatch, Store } from "../../src/store/store.ts";
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

/** Every key under `prefix`, as written. */
async function listed<T>(kv: Deno.Kv, prefix: Deno.KvKey): Promise<Deno.KvEntry<T>[]> {
  return await Array.fromAsync(kv.list<T>({ prefix }));
}

/** The lanes of event `id`'s job, in lane order, as stored. */
const lanesOf = (kv: Deno.Kv, id: string) =>
  kv.getMany<Job[]>(Array.from({ length: FANOUT_LANES }, (_, lane) => laneKey(id, lane)));

/** An event created for `n` targets, its job written and not run: its targets and id. */
async function createdFor(store: Store, n: number) {
  const targets = users(n);
  const e = makeEnvelope();
  await store.createEvent(e, targets, result(e, targets.length));
  return { targets, id: e.metadata.id };
}

/** The targets of each lane of event `id`'s job, from its chunks (lane k: k, k + lanes, …). */
async function targetsByLane(kv: Deno.Kv, id: string): Promise<string[][]> {
  const chunks = await listed<string[]>(kv, ["job_targets", id]);
  return Array.from(
    { length: FANOUT_LANES },
    (_, lane) =>
      chunks.filter((c) => Number(c.key.at(-1)) % FANOUT_LANES === lane).flatMap((c) => c.value),
  );
}

Deno.test("kv store fan-out writes a large audience in lanes side by side, every target once", async () => {
  await withStore(async (store, raw) => {
    const { targets, id } = await createdFor(store, FANOUT_LANES * LANE_TARGETS_MIN + 7);
    const lanes = await lanesOf(raw, id);
    assert.deepEqual(lanes.map((l) => [l.value?.chunk, l.value?.lanes]), [[0, 2], [1, 2]]);
    assert.ok(lanes[0].value!.chunks >= FANOUT_LANES);
    assert.deepEqual(await store.unfinishedFanouts(), [id], "one job, whatever its lanes");
    const laneOf = new Map(
      (await targetsByLane(raw, id)).flatMap((of, lane) => of.map((user) => [user, lane])),
    );

    const batches: FanoutBatch[] = [];
    await store.runFanout(id, (batch) => void batches.push(batch));
    const items = batches.flatMap((b) => b.items);
    assert.equal(items.length, targets.length);
    assert.equal(new Set(items.map((i) => i.user)).size, targets.length);
    assert.ok(items.every((i) => i.item.seq === 1));
    // Side by side: the second lane's first batch lands before the first lane's last one.
    const lanesOfBatches = batches.map((b) => new Set(b.items.map((i) => laneOf.get(i.user))));
    assert.ok(lanesOfBatches.every((of) => of.size === 1), "a batch is of one lane");
    const lastOfFirst = lanesOfBatches.findLastIndex((of) => of.has(0));
    const firstOfSecond = lanesOfBatches.findIndex((of) => of.has(1));
    assert.ok(firstOfSecond >= 0 && firstOfSecond < lastOfFirst, "the lanes overlap");
    // Ended once, in one commit: no lane, no target chunk left, the event done.
    assert.deepEqual((await lanesOf(raw, id)).map((l) => l.value), [null, null]);
    assert.deepEqual(await listed(raw, ["job_targets", id]), []);
    assert.equal((await store.getStatus(id))?.fan_out, "done");
    assert.deepEqual(await store.unfinishedFanouts(), []);
  });
});

Deno.test("kv store fan-out resumes the lanes left behind; one past its chunks waits for them", async () => {
  await withStore(async (store, raw) => {
    const { id } = await createdFor(store, FANOUT_LANES * LANE_TARGETS_MIN);
    // As a process killed midway leaves it: the first lane past its last chunk (its
    // targets written), the second not started.
    const [first] = await lanesOf(raw, id);
    await raw.set(laneKey(id, 0), { ...first.value!, chunk: first.value!.chunks, offset: 0 });
    const [firstLane, secondLane] = await targetsByLane(raw, id);

    const handed: string[] = [];
    await store.runFanout(id, (batch) => handed.push(...batch.items.map((i) => i.user)));
    assert.deepEqual(handed.toSorted(), secondLane.toSorted(), "the second lane's targets only");
    for (const user of firstLane.slice(0, 20)) assert.equal(await store.lastSeq(user), 0, user);
    for (const user of secondLane.slice(0, 20)) assert.equal(await store.lastSeq(user), 1, user);
    assert.deepEqual((await lanesOf(raw, id)).map((l) => l.value), [null, null]);
    assert.equal((await store.getStatus(id))?.fan_out, "done");
  });
});

Deno.test("kv store fan-out: two runners of a job in lanes write every target exactly once", async () => {
  await withStore(async (store, raw) => {
    const { targets, id } = await createdFor(store, FANOUT_LANES * LANE_TARGETS_MIN);
    const other = createKvStore(raw, { recentWindowMs: 60_000 });
    const handed: string[] = [];
    const onBatch = (batch: FanoutBatch) => handed.push(...batch.items.map((i) => i.user));
    await Promise.all([store.runFanout(id, onBatch), other.runFanout(id, onBatch)]);
    assert.deepEqual(handed.toSorted(), targets.toSorted());
    for (const user of [targets[0], targets[1500], targets.at(-1)!]) {
      assert.equal(await store.lastSeq(user), 1, user);
    }
    assert.deepEqual((await lanesOf(raw, id)).map((l) => l.value), [null, null]);
    assert.equal((await store.getStatus(id))?.fan_out, "done");
  });
});

Deno.test("kv store fan-out runs a smaller audience in one lane", async () => {
  await withStore(async (store, raw) => {
    const { id } = await createdFor(store, 2 * LANE_TARGETS_MIN - 1);
    const lanes = await lanesOf(raw, id);
    assert.equal(lanes[0].value?.lanes, undefined);
    assert.equal(lanes[1].value, null);
  });
});

Deno.test("kv store fan-out writes a large audience in key order, whatever the audience's order", async () => {
  await withStore(async (store) => {
    // Ids in no order (as a USER list of random ids comes), more than one batch and chunk.
    const targets: string[] = Array.from(
      { length: 3 * LANE_TARGETS_MIN },
      () => crypto.randomUUID(),
    );
    const e = makeEnvelope();
    await store.createEvent(e, targets, result(e, targets.length));
    const batches: FanoutBatch[] = [];
    await store.runFanout(e.metadata.id, (batch) => void batches.push(batch));
    // Each batch's users are neighbours in key order: sorted, and no other target between.
    const sorted = targets.toSorted();
    for (const batch of batches) {
      const users = batch.items.map((i) => i.user);
      const first = sorted.indexOf(users[0]);
      assert.deepEqual(users, sorted.slice(first, first + users.length));
    }
    assert.equal(batches.reduce((n, b) => n + b.items.length, 0), targets.length);
  });
});
