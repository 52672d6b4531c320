/**
 * The Redis KV layer itself: its key order against Deno KV's, its values, its commits
 * (checks, all or nothing, concurrent writers), `sum`/`min`/`max`, `expireIn`, and its
 * `list` compared with a real in-memory Deno KV filled the same way.
 */

import assert from "node:assert/strict";
import { compareBytes, decodeKey, encodeKey } from "../../src/store/redis_kv/key_codec.ts";
import { kvLimitsOf } from "../../src/store/kv/limits.ts";
import { freshPrefix, ignoreRedis, openRedisKv, rawRedis } from "../_support/redis_kv.ts";

/** A small deterministic random source (mulberry32), so a failure can be replayed. */
function random(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STRING_PIECES = ["", "a", "b", "ab", "\0", "a\0", "\u00ff", "é", "€", "😀", "z", "A", "\x01"];
const NUMBERS = [0, -0, 1, -1, 0.5, -0.5, 2, 1e300, -1e300, Infinity, -Infinity, NaN, 42, 5e-324];
const BIGINTS = [
  0n,
  1n,
  -1n,
  255n,
  256n,
  -255n,
  -256n,
  2n ** 63n,
  -(2n ** 63n),
  2n ** 64n,
  2n ** 70n,
  -(2n ** 70n),
  2n ** 100n,
];

/** A random key of one to three parts of every type Deno KV takes. */
function randomKey(next: () => number): Deno.KvKey {
  const pick = <T>(list: T[]) => list[Math.floor(next() * list.length)];
  const parts = 1 + Math.floor(next() * 3);
  return Array.from({ length: parts }, () => {
    switch (Math.floor(next() * 5)) {
      case 0:
        return Uint8Array.from({ length: Math.floor(next() * 4) }, () => pick([0, 1, 0xff, 7]));
      case 1:
        return Array.from({ length: Math.floor(next() * 3) }, () => pick(STRING_PIECES)).join("");
      case 2:
        return pick(NUMBERS) * (next() < 0.2 ? next() : 1);
      case 3:
        return pick(BIGINTS);
      default:
        return next() < 0.5;
    }
  });
}

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** Distinct keys (by encoding) drawn from `seed`. */
function distinctKeys(seed: number, count: number): Deno.KvKey[] {
  const next = random(seed);
  const byEncoding = new Map<string, Deno.KvKey>();
  while (byEncoding.size < count) {
    const key = randomKey(next);
    byEncoding.set(hex(encodeKey(key)), key);
  }
  return [...byEncoding.values()];
}

Deno.test("redis kv encodes keys in exactly Deno KV's order", async () => {
  const keys = distinctKeys(7, 600);
  using kv = await Deno.openKv(":memory:");
  for (const key of keys) await kv.set(key, 0);
  const denoOrder: string[] = [];
  for await (const e of kv.list({ prefix: [] })) denoOrder.push(hex(encodeKey(e.key)));
  assert.equal(denoOrder.length, keys.length, "Deno KV kept every key apart");
  const ours = keys.map((k) => encodeKey(k)).sort(compareBytes).map(hex);
  assert.deepEqual(ours, denoOrder);
});

Deno.test("redis kv decodes every key it encodes", () => {
  for (const key of distinctKeys(11, 400)) {
    const back = decodeKey(encodeKey(key));
    assert.equal(back.length, key.length);
    key.forEach((part, i) => {
      if (typeof part === "number") assert.ok(Object.is(back[i], part), `${part}`);
      else assert.deepEqual(back[i], part);
    });
  }
});

/** A Redis KV test on a fresh database. */
function redisTest(name: string, fn: (kv: Deno.Kv, prefix: string) => Promise<void>) {
  Deno.test({
    name: `redis kv ${name}`,
    ignore: ignoreRedis,
    async fn() {
      const prefix = freshPrefix();
      const kv = openRedisKv(prefix);
      try {
        await fn(kv, prefix);
      } finally {
        kv.close();
      }
    },
  });
}

redisTest("reads back every kind of value Deno KV stores", async (kv) => {
  using deno = await Deno.openKv(":memory:");
  const values: unknown[] = [
    { a: 1, nested: { list: [1, "two", null, true] } },
    "text é😀",
    -0.25,
    12345678901234567890n,
    new Uint8Array([0, 1, 255]),
    new Date(1_700_000_000_000),
    new Map<string, unknown>([["k", { v: 1 }]]),
    new Set(["x", "y"]),
    null,
    false,
    new Deno.KvU64(18446744073709551615n),
  ];
  for (const [i, value] of values.entries()) {
    await kv.set(["v", i], value);
    await deno.set(["v", i], value);
    const [ours, theirs] = [await kv.get(["v", i]), await deno.get(["v", i])];
    assert.deepEqual(ours.value, theirs.value, `value ${i}`);
    assert.match(ours.versionstamp!, /^[0-9a-f]{20}$/);
  }
  assert.ok((await kv.get(["v", values.length - 1])).value instanceof Deno.KvU64);
  assert.deepEqual(await kv.get(["missing"]), {
    key: ["missing"],
    value: null,
    versionstamp: null,
  });
});

redisTest("gives every key of a commit its versionstamp, later commits larger ones", async (kv) => {
  const first = await kv.atomic().set(["a"], 1).set(["b"], 2).sum(["n"], 1n).commit();
  assert.ok(first.ok);
  const second = await kv.set(["a"], 3);
  assert.ok(second.versionstamp > first.versionstamp);
  const [a, b, n] = await kv.getMany([["a"], ["b"], ["n"]]);
  assert.equal(a.versionstamp, second.versionstamp);
  assert.equal(b.versionstamp, first.versionstamp);
  assert.equal(n.versionstamp, first.versionstamp);
});

redisTest("fails a whole commit on a stale versionstamp and applies none of it", async (kv) => {
  const { versionstamp } = await kv.set(["a"], "v1");
  await kv.set(["a"], "v2");
  const res = await kv.atomic()
    .check({ key: ["a"], versionstamp })
    .set(["b"], "written?")
    .delete(["a"])
    .sum(["n"], 1n)
    .commit();
  assert.deepEqual(res, { ok: false });
  const [a, b, n] = await kv.getMany([["a"], ["b"], ["n"]]);
  assert.equal(a.value, "v2");
  assert.equal(b.versionstamp, null);
  assert.equal(n.versionstamp, null);
  const listed = await Array.fromAsync(kv.list({ prefix: [] }));
  assert.deepEqual(listed.map((e) => e.key), [["a"]], "no index entry either");
});

redisTest("fails a null check on a present key and passes it on an absent one", async (kv) => {
  await kv.set(["a"], 1);
  assert.deepEqual(
    await kv.atomic().check({ key: ["a"], versionstamp: null }).set(["x"], 1).commit(),
    { ok: false },
  );
  const res = await kv.atomic().check({ key: ["b"], versionstamp: null }).set(["b"], 2).commit();
  assert.equal(res.ok, true);
  const current = await kv.get(["b"]);
  assert.equal(current.versionstamp, (res as Deno.KvCommitResult).versionstamp);
  // The current versionstamp passes; a deleted key is absent again.
  assert.ok((await kv.atomic().check(current).delete(["b"]).commit()).ok);
  assert.ok((await kv.atomic().check({ key: ["b"], versionstamp: null }).commit()).ok);
});

redisTest("lets exactly one of two clients win a race on the same keys", async (kv, prefix) => {
  const other = openRedisKv(prefix);
  try {
    await kv.set(["counter"], 0);
    const read = await kv.get<number>(["counter"]);
    const seen = await other.get<number>(["counter"]);
    assert.equal(seen.versionstamp, read.versionstamp, "one database on both clients");
    const results = await Promise.all([
      kv.atomic().check(read).set(["counter"], 1).set(["winner"], "a").commit(),
      other.atomic().check(seen).set(["counter"], 2).set(["winner"], "b").commit(),
    ]);
    assert.deepEqual(results.map((r) => r.ok).sort(), [false, true]);
    const winner = results[0].ok ? ["a", 1] : ["b", 2];
    assert.equal((await other.get(["winner"])).value, winner[0]);
    assert.equal((await kv.get(["counter"])).value, winner[1]);

    // Many increments from both clients, each retried until it lands: none is lost.
    const increment = async (db: Deno.Kv) => {
      for (;;) {
        const cur = await db.get<number>(["counter"]);
        if ((await db.atomic().check(cur).set(["counter"], cur.value! + 1).commit()).ok) return;
      }
    };
    const before = (await kv.get<number>(["counter"])).value!;
    await Promise.all(Array.from({ length: 40 }, (_, i) => increment(i % 2 ? kv : other)));
    assert.equal((await kv.get(["counter"])).value, before + 40);
  } finally {
    other.close();
  }
});

redisTest("sums, mins and maxes u64 values, absent keys taking the operand", async (kv) => {
  const u = (n: bigint) => new Deno.KvU64(n);
  await kv.atomic().sum(["s"], 5n).min(["lo"], 9n).max(["hi"], 3n).commit();
  assert.deepEqual((await kv.getMany([["s"], ["lo"], ["hi"]])).map((e) => e.value), [
    u(5n),
    u(9n),
    u(3n),
  ]);
  await kv.atomic().sum(["s"], 7n).sum(["s"], 1n).min(["lo"], 4n).max(["hi"], 2n).commit();
  assert.deepEqual((await kv.getMany([["s"], ["lo"], ["hi"]])).map((e) => e.value), [
    u(13n),
    u(4n),
    u(3n),
  ]);
  // Sums wrap at 2^64, as in Deno KV.
  await kv.set(["big"], u(2n ** 64n - 2n));
  await kv.atomic().sum(["big"], 5n).commit();
  assert.deepEqual((await kv.get(["big"])).value, u(3n));
  // A set then a sum in one commit adds to the value set.
  await kv.atomic().set(["t"], u(10n)).sum(["t"], 1n).commit();
  assert.deepEqual((await kv.get(["t"])).value, u(11n));
});

redisTest("refuses to sum onto a value that is not a u64 and applies nothing", async (kv) => {
  await kv.set(["text"], "not a number");
  await assert.rejects(
    kv.atomic().set(["other"], 1).sum(["text"], 1n).commit(),
    /non-U64 value/,
  );
  assert.equal((await kv.get(["other"])).versionstamp, null);
  assert.equal((await kv.get(["text"])).value, "not a number");
});

redisTest(
  "forgets a value once its expireIn has passed, in get, getMany and list",
  async (kv, prefix) => {
    await kv.set(["e", "keep"], 1);
    await kv.set(["e", "gone"], 2, { expireIn: 30 });
    await kv.atomic().set(["e", "gone too"], 3, { expireIn: 30 }).commit();
    assert.equal((await kv.get(["e", "gone"])).value, 2);
    const deadline = Date.now() + 5_000;
    while ((await kv.get(["e", "gone too"])).versionstamp !== null) {
      assert.ok(Date.now() < deadline, "still there after 5 s");
      await new Promise((r) => setTimeout(r, 20)); // poll interval of a bounded wait
    }
    assert.equal((await kv.get(["e", "gone"])).value, null);
    const listed = await Array.fromAsync(kv.list({ prefix: ["e"] }));
    assert.deepEqual(listed.map((e) => e.key), [["e", "keep"]]);
    // The list dropped the expired index members; a set without expireIn keeps its value.
    const redis = rawRedis();
    try {
      assert.equal(await redis.zcard(`{${prefix}}:i`), 1);
    } finally {
      redis.disconnect();
    }
  },
);

redisTest("enforces the limits it declares on reads and writes", async (kv) => {
  const limits = kvLimitsOf(kv);
  const tooMany = Array.from({ length: limits.getMany + 1 }, (_, i) => [i]);
  await assert.rejects(kv.getMany(tooMany), /Too many/);
  await assert.rejects(kv.set(["big"], new Uint8Array(70_000)), /Value too large/);
  await assert.rejects(kv.set(["k".repeat(3000)], 1), /Key too large/);
  const op = kv.atomic();
  for (let i = 0; i <= limits.mutations; i++) op.set([i], i);
  await assert.rejects(op.commit(), /Too many mutations/);
  assert.equal((await kv.get([0])).versionstamp, null);
});

redisTest("lists a batch of entries in one round trip", async (kv) => {
  for (let i = 0; i < 25; i++) {
    const op = kv.atomic();
    for (let j = 0; j < 10; j++) op.set(["r", i * 10 + j], i);
    await op.commit();
  }
  const redis = rawRedis();
  try {
    const calls = async () => {
      const info = await redis.info("commandstats");
      return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);
    };
    const before = await calls();
    const listed = await Array.fromAsync(kv.list({ prefix: ["r"] }, { batchSize: 100 }));
    const after = await calls();
    assert.equal(listed.length, 250);
    assert.equal(after - before, 3, "250 entries in batches of 100: three scripts");
  } finally {
    redis.disconnect();
  }
});

redisTest("lists every selector and option exactly as Deno KV does", async (kv) => {
  using deno = await Deno.openKv(":memory:");
  const keys = distinctKeys(3, 300);
  const extra: Deno.KvKey[] = [["p"], ["p", 1], ["p", 2], ["p", "x"], ["p", "x", 1], ["q"], [
    "p",
    new Uint8Array([0]),
  ]];
  for (const [i, key] of [...keys, ...extra].entries()) {
    await kv.set(key, { i });
    await deno.set(key, { i });
  }
  const sorted = [...keys, ...extra].map((k) => ({ k, e: encodeKey(k) }))
    .sort((a, b) => compareBytes(a.e, b.e)).map((x) => x.k);
  const at = (n: number) => sorted[Math.floor(n * (sorted.length - 1))];
  const selectors: Deno.KvListSelector[] = [
    { prefix: [] },
    { prefix: ["p"] },
    { prefix: ["p", "x"] },
    { prefix: ["nothing"] },
    { prefix: ["p"], start: ["p", 2] },
    { prefix: ["p"], end: ["p", "x"] },
    { prefix: [], start: at(0.3) },
    { prefix: [], end: at(0.6) },
    { start: at(0.2), end: at(0.7) },
    { start: at(0.5), end: at(0.5) },
    { start: ["a"], end: ["q"] },
  ];
  const optionSets: Deno.KvListOptions[] = [
    {},
    { reverse: true },
    { limit: 1 },
    { limit: 7, reverse: true },
    { limit: 50, batchSize: 3 },
    { batchSize: 1, reverse: true },
    { limit: 1000, batchSize: 1000 },
  ];
  for (const selector of selectors) {
    for (const options of optionSets) {
      const ours = await Array.fromAsync(kv.list(selector, options));
      const theirs = await Array.fromAsync(deno.list(selector, options));
      const what = `${Deno.inspect(selector)} ${Deno.inspect(options)}`;
      assert.deepEqual(ours.map((e) => e.key), theirs.map((e) => e.key), what);
      assert.deepEqual(ours.map((e) => e.value), theirs.map((e) => e.value), what);
    }
  }
});
