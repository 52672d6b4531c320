/**
 * Actor leases with fencing tokens, on Deno KV and on the Redis KV: one holder at a time,
 * takeover of a lapsed lease with a greater token, fencing of a stale owner's commits,
 * release and renewal. Time is an injected clock; races are forced with a barrier.
 */

import assert from "node:assert/strict";
import { createLeases, type Lease, type Leases } from "../../src/cluster/leases.ts";
import { ignoreRedis, openRedisKv } from "../_support/redis_kv.ts";
import { barrier } from "../_support/barrier.ts";

const TTL = 10_000;

/** A clock the test moves by hand. */
function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

const stores: { name: string; ignore: boolean; open(): Promise<Deno.Kv> }[] = [
  { name: "deno kv", ignore: false, open: () => Deno.openKv(":memory:") },
  { name: "redis kv", ignore: ignoreRedis, open: () => Promise.resolve(openRedisKv()) },
];

/**
 * `kv` whose first `getMany` waits until `parties` callers sharing `arrive` have read,
 * so that every racer reads the same state before any of them commits.
 */
function gated(kv: Deno.Kv, arrive: () => Promise<void>): Deno.Kv {
  let first = true;
  const getMany = async (...args: Parameters<Deno.Kv["getMany"]>) => {
    const entries = await kv.getMany(...args);
    if (first) {
      first = false;
      await arrive();
    }
    return entries;
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "getMany") return getMany;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Writes `value` under `key` in a commit fenced with `lease`; answers whether it committed. */
async function fencedWrite(
  kv: Deno.Kv,
  leases: Leases,
  lease: Lease,
  key: Deno.KvKey,
  value: string,
): Promise<boolean> {
  const res = await leases.fence(kv.atomic(), lease).set(key, value).commit();
  return res.ok;
}

for (const store of stores) {
  const test = (name: string, fn: (kv: Deno.Kv) => Promise<void>) =>
    Deno.test({
      name: `leases on ${store.name}: ${name}`,
      ignore: store.ignore,
      async fn() {
        const kv = await store.open();
        try {
          await fn(kv);
        } finally {
          kv.close();
        }
      },
    });

  test("two nodes racing for a lease, free or lapsed, get exactly one winner", async (kv) => {
    const time = clock();
    for (let round = 0; round < 40; round++) {
      const id = `u${round}`;
      // Odd rounds race for a lease a third node held and let lapse.
      if (round % 2 === 1) {
        const old = await createLeases(kv, { node: "c", ttlMs: TTL, now: time.now })
          .acquire("user", id);
        assert.ok(old);
        time.advance(TTL);
      }
      const arrive = barrier(2);
      const a = createLeases(gated(kv, arrive), { node: "a", ttlMs: TTL, now: time.now });
      const b = createLeases(gated(kv, arrive), { node: "b", ttlMs: TTL, now: time.now });
      const [la, lb] = await Promise.all([a.acquire("user", id), b.acquire("user", id)]);
      const won = [la, lb].filter((l) => l !== undefined);
      assert.equal(won.length, 1, `round ${round}: one winner`);
      const holder = await a.holder("user", id);
      assert.equal(holder?.node, won[0].node);
      assert.equal(holder?.token, round % 2 === 1 ? 2 : 1);
    }
  });

  test("a lapsed lease is taken over with a greater token", async (kv) => {
    const time = clock();
    const a = createLeases(kv, { node: "a", ttlMs: TTL, now: time.now });
    const b = createLeases(kv, { node: "b", ttlMs: TTL, now: time.now });
    const la = await a.acquire("conversation", "c1");
    assert.ok(la);
    assert.equal(la.expiresAt, time.now() + TTL);

    time.advance(TTL - 1);
    assert.equal(await b.acquire("conversation", "c1"), undefined, "still live");
    assert.equal((await b.holder("conversation", "c1"))?.node, "a");

    time.advance(1);
    assert.equal(await b.holder("conversation", "c1"), undefined, "lapsed");
    const lb = await b.acquire("conversation", "c1");
    assert.ok(lb);
    assert.ok(lb.token > la.token, `${lb.token} > ${la.token}`);
    assert.deepEqual(await a.holder("conversation", "c1"), {
      kind: "conversation",
      id: "c1",
      node: "b",
      token: lb.token,
      expiresAt: lb.expiresAt,
    });

    // And again: tokens keep growing across takeovers.
    time.advance(TTL);
    const la2 = await a.acquire("conversation", "c1");
    assert.ok(la2 && la2.token > lb.token);
  });

  test("after a takeover the old owner's fenced commit fails and writes nothing", async (kv) => {
    const time = clock();
    const a = createLeases(kv, { node: "a", ttlMs: TTL, now: time.now });
    const b = createLeases(kv, { node: "b", ttlMs: TTL, now: time.now });
    const la = await a.acquire("user", "u1");
    assert.ok(la);
    assert.ok(await fencedWrite(kv, a, la, ["stream", "u1", 1], "from a"));

    // The holder's renewals keep its fence: both the lease it acquired and the renewed one.
    let renewed: Lease | undefined = la;
    for (let i = 0; i < 3; i++) {
      time.advance(TTL / 2);
      renewed = await a.renew(renewed!);
      assert.ok(renewed, `renewal ${i}`);
      assert.equal(renewed.token, la.token);
    }
    assert.ok(await fencedWrite(kv, a, la, ["stream", "u1", 2], "from a"));
    assert.ok(await fencedWrite(kv, a, renewed!, ["stream", "u1", 3], "from a"));
    assert.equal(await b.acquire("user", "u1"), undefined, "renewed, so still held");

    // a pauses past its lease; b takes over.
    time.advance(TTL);
    const lb = await b.acquire("user", "u1");
    assert.ok(lb);

    assert.equal(await fencedWrite(kv, a, la, ["stream", "u1", 4], "stale a"), false);
    assert.equal(await fencedWrite(kv, a, renewed!, ["stream", "u1", 4], "stale a"), false);
    assert.equal((await kv.get(["stream", "u1", 4])).versionstamp, null, "nothing written");
    assert.ok(await fencedWrite(kv, b, lb, ["stream", "u1", 4], "from b"));
    assert.equal((await kv.get(["stream", "u1", 4])).value, "from b");

    assert.equal(await a.renew(renewed!), undefined, "a lost lease is not renewed");
    assert.equal(await a.release(la), false, "a lost lease is not released");
    assert.equal((await b.holder("user", "u1"))?.node, "b");
  });

  test("a lapsed lease nobody took over can still be renewed and still fences", async (kv) => {
    const time = clock();
    const a = createLeases(kv, { node: "a", ttlMs: TTL, now: time.now });
    const la = await a.acquire("mailer", "m");
    assert.ok(la);
    time.advance(TTL * 3);
    assert.ok(await fencedWrite(kv, a, la, ["mail", 1], "x"));
    const renewed = await a.renew(la);
    assert.ok(renewed);
    assert.equal(renewed.expiresAt, time.now() + TTL);
    assert.equal((await a.holder("mailer", "m"))?.node, "a");
  });

  test("a release lets another node acquire at once and fences the released lease", async (kv) => {
    const time = clock();
    const a = createLeases(kv, { node: "a", ttlMs: TTL, now: time.now });
    const b = createLeases(kv, { node: "b", ttlMs: TTL, now: time.now });
    const la = await a.acquire("user", "u1");
    assert.ok(la);
    assert.equal(await a.acquire("user", "u1"), undefined, "a live lease, even its own");

    assert.equal(await a.release(la), true);
    assert.equal(await a.holder("user", "u1"), undefined);
    assert.equal(await fencedWrite(kv, a, la, ["stream", "u1", 1], "released"), false);
    assert.equal(await a.renew(la), undefined, "a released lease is not renewed");

    const lb = await b.acquire("user", "u1");
    assert.ok(lb);
    assert.ok(lb.token > la.token);
    assert.ok(await fencedWrite(kv, b, lb, ["stream", "u1", 1], "from b"));
    assert.equal(await a.release(la), false, "released once");
    assert.equal((await b.holder("user", "u1"))?.node, "b");
  });

  test("hostile and long ids are plain key parts, each with its own lease", async (kv) => {
    const time = clock();
    const a = createLeases(kv, { node: "a", ttlMs: TTL, now: time.now });
    const b = createLeases(kv, { node: "b", ttlMs: TTL, now: time.now });
    const ids = ["constructor", "__proto__", "toString", "hasOwnProperty", "", "x".repeat(1000)];
    for (const id of ids) {
      const lease = await a.acquire("user", id);
      assert.ok(lease, `acquired ${id.slice(0, 20)}`);
      assert.equal(lease.token, 1);
      assert.equal(lease.id, id);
    }
    for (const id of ids) {
      assert.equal(await b.acquire("user", id), undefined);
      const holder = await b.holder("user", id);
      assert.equal(holder?.node, "a");
      assert.equal(holder?.id, id);
    }
    assert.equal(await b.holder("user", "prototype"), undefined);
    assert.equal(await b.holder("conversation", "constructor"), undefined, "kinds apart");
  });
}

Deno.test("leases refuse a ttl that is not a positive number", async () => {
  using kv = await Deno.openKv(":memory:");
  for (const ttlMs of [0, -1, NaN, Infinity]) {
    assert.throws(() => createLeases(kv, { node: "a", ttlMs }), RangeError);
  }
});
