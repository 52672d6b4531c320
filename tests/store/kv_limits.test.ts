/**
 * Limits per database: Deno KV keeps its own (100 checks, 10 keys per `getMany`), the
 * Redis KV declares wider ones on one commit and one read and enforces them, and the
 * fan-out job sizes its batches by the database it writes to.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { deserialize, serialize } from "node:v8";
import { createKvStore } from "../../src/store/kv_store.ts";
import * as keys from "../../src/store/keys.ts";
import { FANOUT_BATCH_MAX, LANE_TARGETS_MIN, laneKey } from "../../src/store/kv/fanout.ts";
import {
  KV_LIMITS,
  KV_LIMITS_KEY,
  kvBudgetsOf,
  kvLimitsOf,
  MAX_CHECKS,
  REDIS_KV_LIMITS,
} from "../../src/store/kv/limits.ts";
import { ByteWriter } from "../../src/store/redis_kv/key_codec.ts";
import { decodeStored, encodeValueInto } from "../../src/store/redis_kv/value_codec.ts";
import type { FanoutBatch } from "../../src/store/store.ts";
import { ignoreRedis, openRedisKv } from "../_support/redis_kv.ts";
import { makeEnvelope, result } from "../_support/store.ts";

const users = (n: number) => Array.from({ length: n }, (_, i) => `u${i}`);

/** Runs `fn` on a fresh in-memory Deno KV, closed afterwards. */
async function withDenoKv(fn: (kv: Deno.Kv) => Promise<void>) {
  const kv = await Deno.openKv(":memory:");
  try {
    await fn(kv);
  } finally {
    kv.close();
  }
}

/** A test on a fresh Redis KV database, closed afterwards. */
function redisTest(name: string, fn: (kv: Deno.Kv) => Promise<void>) {
  Deno.test({
    name,
    ignore: ignoreRedis,
    async fn() {
      const kv = openRedisKv();
      try {
        await fn(kv);
      } finally {
        kv.close();
      }
    },
  });
}

/** Fans a REALTIME event out to `n` users on `kv`; answers the batches handed over. */
async function fanOut(kv: Deno.Kv, n: number): Promise<FanoutBatch[]> {
  const store = createKvStore(kv, { recentWindowMs: 60_000 });
  const targets = users(n);
  const e = makeEnvelope("REALTIME");
  await store.createEvent(e, targets, result(e, n));
  const batches: FanoutBatch[] = [];
  await store.runFanout(e.metadata.id, (batch) => void batches.push(batch));
  const written = batches.flatMap((b) => b.items.map((i) => i.user));
  assert.deepEqual(written.sort(), [...targets].sort(), "every target once");
  assert.equal((await kv.get(keys.jobKey(e.metadata.id))).value, null, "the job is done");
  return batches;
}

Deno.test("deno kv has deno kv's limits, and still refuses a commit of 101 checks", async () => {
  await withDenoKv(async (kv) => {
    assert.equal(kvLimitsOf(kv), KV_LIMITS);
    assert.equal(kvBudgetsOf(kv).checks, MAX_CHECKS);
    const op = kv.atomic();
    for (let i = 0; i <= KV_LIMITS.checks; i++) op.check({ key: ["c", i], versionstamp: null });
    op.set(["written"], 1);
    await assert.rejects(async () => await op.commit());
    assert.equal((await kv.get(["written"])).versionstamp, null);
    await assert.rejects(async () =>
      await kv.getMany(Array.from({ length: KV_LIMITS.getMany + 1 }, (_, i) => ["g", i]))
    );
  });
});

Deno.test("a fan-out job on deno kv commits at most 99 users at a time", async () => {
  await withDenoKv(async (kv) => {
    const batches = await fanOut(kv, 250);
    assert.ok(batches.length >= 3, `${batches.length} batches`);
    for (const batch of batches) assert.ok(batch.items.length < KV_LIMITS.checks);
  });
});

Deno.test("a fan-out job deno kv refuses as too large for one commit goes in smaller batches", async () => {
  await withDenoKv(async (kv) => {
    // A database that declares more than one commit of it holds: the job sizes batches of
    // 500 users, which Deno KV refuses, as it would a batch whose size the job counted short.
    const limits = { ...REDIS_KV_LIMITS, getMany: KV_LIMITS.getMany };
    Object.defineProperty(kv, KV_LIMITS_KEY, { value: limits });
    const batches = await fanOut(kv, 600);
    for (const batch of batches) assert.ok(batch.items.length < KV_LIMITS.checks);
  });
});

redisTest("the redis kv declares its wider limits and commits 500 checks at once", async (kv) => {
  assert.equal(kvLimitsOf(kv), REDIS_KV_LIMITS);
  assert.ok(kvBudgetsOf(kv).checks > KV_LIMITS.checks);
  const op = kv.atomic();
  for (let i = 0; i < 500; i++) {
    op.check({ key: ["c", i], versionstamp: null }).set(["c", i], i);
  }
  const res = await op.commit();
  assert.equal(res.ok, true);
  const read = await kv.getMany<number[]>(users(500).map((_, i) => ["c", i]));
  assert.equal(read.length, 500, "one getMany of 500 keys");
  assert.deepEqual(read.map((e) => e.value), users(500).map((_, i) => i));
});

redisTest("a redis kv commit of 500 checks with one stale writes nothing", async (kv) => {
  await kv.set(["c", 250], "there");
  const op = kv.atomic();
  for (let i = 0; i < 500; i++) {
    op.check({ key: ["c", i], versionstamp: null }).set(["c", i], i);
  }
  assert.equal((await op.commit()).ok, false);
  assert.equal((await kv.get(["c", 0])).versionstamp, null);
  assert.equal((await kv.get(["c", 499])).versionstamp, null);
  assert.equal((await kv.get(["c", 250])).value, "there");
});

redisTest("the redis kv refuses a commit or a read past the limits it declares", async (kv) => {
  const limits = kvLimitsOf(kv);
  const op = kv.atomic();
  for (let i = 0; i <= limits.checks; i++) op.check({ key: ["c", i], versionstamp: null });
  op.set(["written"], 1);
  await assert.rejects(op.commit(), /Too many checks \(max 1000\)/);
  assert.equal((await kv.get(["written"])).versionstamp, null);
  const tooMany = Array.from({ length: limits.getMany + 1 }, (_, i) => ["g", i]);
  await assert.rejects(kv.getMany(tooMany), /Too many ranges \(max 1000\)/);
});

redisTest("a fan-out job on the redis kv commits hundreds of users at a time", async (kv) => {
  const batches = await fanOut(kv, 1200);
  assert.deepEqual(batches.map((b) => b.items.length), [
    FANOUT_BATCH_MAX,
    FANOUT_BATCH_MAX,
    1200 - 2 * FANOUT_BATCH_MAX,
  ]);
  // Each user's item sits right above its stored seq.
  for (const batch of batches) for (const { item } of batch.items) assert.equal(item.seq, 1);
  const again = await fanOut(kv, 1200);
  assert.ok(again.every((b) => b.items.every((i) => i.item.seq === 2)));
});

redisTest("a fan-out batch on the redis kv takes a short tail of its chunk with it", async (kv) => {
  // 1,100 targets in one chunk: after a batch of 500, the 600 left would leave 100 for a
  // commit of their own (under a quarter batch), so they go together.
  const batches = await fanOut(kv, 1100);
  assert.deepEqual(batches.map((b) => b.items.length), [FANOUT_BATCH_MAX, 1100 - FANOUT_BATCH_MAX]);
  for (const batch of batches) for (const { item } of batch.items) assert.equal(item.seq, 1);
});

Deno.test("the redis kv writes plain values as v8 serializes them, and reads them back", () => {
  const values: unknown[] = [
    0,
    -0,
    7,
    -1,
    2 ** 31 - 1,
    -(2 ** 31),
    2 ** 31,
    1.5,
    NaN,
    Infinity,
    1_764_400_000_000,
    "",
    "abc",
    "é\u00ff",
    "€ 😀",
    true,
    false,
    null,
    undefined,
    {},
    [],
    [1, "a", [null]],
    // An item-like object, in an order of its own: V8 writes a number by how the object's
    // hidden class stores the field, and a class shared with the stream items made earlier
    // in the process may hold `seq` as a double (the value reads back the same either way).
    { id: "e", seq: 3, type: "REALTIME", durable: false, ack: false, at: 1.7e12 },
    { a: undefined, b: { c: [1, { d: "x" }] } },
    { "0": 1, x: 2 },
    [1, , 3],
    Object.assign(Object.create(null), { k: 1 }),
    new Uint8Array([1, 2]),
    new Date(0),
    12n,
    new Map([["k", 1]]),
  ];
  for (const [i, value] of values.entries()) {
    const w = new ByteWriter();
    encodeValueInto(w, value);
    const written = w.done();
    assert.deepEqual(
      Buffer.from(written).toString("hex"),
      Buffer.concat([Buffer.from("v"), serialize(value)]).toString("hex"),
      `the bytes of value ${i}`,
    );
    const stored = Buffer.concat([Buffer.from("0".repeat(20)), written]);
    assert.deepEqual(decodeStored(stored).value, deserialize(serialize(value)));
  }
});

redisTest(
  "a fan-out job of 2,000 users on the redis kv runs in two lanes, every target once",
  async (kv) => {
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const targets = users(2 * LANE_TARGETS_MIN);
    const e = makeEnvelope("REALTIME");
    await store.createEvent(e, targets, result(e, targets.length));
    const second = await kv.get<{ lanes?: number }>(laneKey(e.metadata.id, 1));
    assert.equal(second.value?.lanes, 2, "a second lane");
    const batches: FanoutBatch[] = [];
    await store.runFanout(e.metadata.id, (batch) => void batches.push(batch));
    const written = batches.flatMap((b) => b.items.map((i) => i.user));
    assert.deepEqual(written.sort(), [...targets].sort(), "every target once");
    for (const batch of batches) for (const { item } of batch.items) assert.equal(item.seq, 1);
    assert.deepEqual(await Array.fromAsync(kv.list({ prefix: keys.jobPrefix() })), []);
    assert.equal((await store.getStatus(e.metadata.id))?.fan_out, "done");
  },
);
