/**
 * The rate limiter contract, run against every adapter: memory, Deno KV (in memory and
 * on a file shared by two limiters, as two processes would) and Redis through
 * `@upstash/ratelimit` on a real `redis-server`.
 */

import assert from "node:assert/strict";
import { createKvRateLimiter } from "../../src/ratelimit/kv_rate_limiter.ts";
import { createMemoryRateLimiter } from "../../src/ratelimit/memory_rate_limiter.ts";
import type { RateLimiter } from "../../src/ratelimit/rate_limiter.ts";
import { createRedisClient } from "../../src/ratelimit/redis_client.ts";
import { createRedisRateLimiter } from "../../src/ratelimit/redis_rate_limiter.ts";
import { skipWithoutRedis, startRedis } from "../_support/redis.ts";

/** Two limiters sharing one backing store (for the memory adapter, the same one). */
interface Pair {
  a: RateLimiter;
  b: RateLimiter;
  close(): Promise<void>;
}

interface Adapter {
  name: string;
  open(): Promise<Pair>;
}

const adapters: Adapter[] = [
  {
    name: "memory",
    open() {
      const a = createMemoryRateLimiter();
      return Promise.resolve({ a, b: a, close: () => a.close() });
    },
  },
  {
    name: "kv (in memory)",
    async open() {
      const kv = await Deno.openKv(":memory:");
      const a = createKvRateLimiter(kv);
      return {
        a,
        b: a,
        async close() {
          await a.close();
          kv.close();
        },
      };
    },
  },
  {
    name: "kv (one file, two handles)",
    async open() {
      const dir = await Deno.makeTempDir();
      const kv1 = await Deno.openKv(`${dir}/rl.kv`);
      const kv2 = await Deno.openKv(`${dir}/rl.kv`);
      const a = createKvRateLimiter(kv1);
      const b = createKvRateLimiter(kv2);
      return {
        a,
        b,
        async close() {
          await Promise.all([a.close(), b.close()]);
          kv1.close();
          kv2.close();
          await Deno.remove(dir, { recursive: true });
        },
      };
    },
  },
  {
    name: "redis",
    async open() {
      const redis = await startRedis();
      const prefix = `relais:test:${crypto.randomUUID()}`;
      const a = createRedisRateLimiter(createRedisClient(redis.url), { prefix });
      const b = createRedisRateLimiter(createRedisClient(redis.url), { prefix });
      return {
        a,
        b,
        async close() {
          await Promise.all([a.close(), b.close()]);
          await redis.stop();
        },
      };
    },
  },
];

// These tests measure time themselves: one contract runs against every adapter, Redis
// included, whose windows and expiries follow the real clock.
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits, if needed, so that the next `spanMs` stay inside one fixed window. */
async function awayFromBoundary(windowMs: number, spanMs: number) {
  const into = Date.now() % windowMs;
  // Measures time: skips to the next real window when this one is about to end.
  if (into > windowMs - spanMs) await sleep(windowMs - into + 5);
}

for (const adapter of adapters) {
  const name = (what: string) => `${adapter.name} rate limiter ${what}`;
  const test = (what: string, fn: (pair: Pair) => Promise<void>) =>
    Deno.test({
      name: name(what),
      ignore: adapter.name === "redis" && skipWithoutRedis(),
      sanitizeResources: false,
      sanitizeOps: false,
      async fn() {
        const pair = await adapter.open();
        try {
          await fn(pair);
        } finally {
          await pair.close();
        }
      },
    });

  test("allows the limit, then refuses with a retry delay within the window", async ({ a }) => {
    const rule = { limit: 5, windowMs: 60_000 };
    await awayFromBoundary(rule.windowMs, 5_000);
    const decisions = [];
    for (let i = 0; i < 7; i++) decisions.push(await a.hit("flood", rule));
    assert.deepEqual(decisions.map((d) => d.allowed), [true, true, true, true, true, false, false]);
    assert.deepEqual(decisions.slice(0, 5).map((d) => d.remaining), [4, 3, 2, 1, 0]);
    const refused = decisions[6];
    assert.equal(refused.remaining, 0);
    assert.ok(
      refused.retryAfterMs > 0 && refused.retryAfterMs <= rule.windowMs,
      `${refused.retryAfterMs}`,
    );
    assert.ok(refused.resetAt > Date.now());
  });

  test("keeps keys apart: a flooding key leaves another untouched", async ({ a }) => {
    const rule = { limit: 3, windowMs: 60_000 };
    await awayFromBoundary(rule.windowMs, 5_000);
    for (let i = 0; i < 10; i++) await a.hit("noisy", rule);
    assert.equal((await a.hit("noisy", rule)).allowed, false);
    const quiet = await a.hit("quiet", rule);
    assert.equal(quiet.allowed, true);
    assert.equal(quiet.remaining, 2);
  });

  test("keeps rules apart for one key", async ({ a }) => {
    const short = { limit: 2, windowMs: 60_000 };
    const long = { limit: 2, windowMs: 3_600_000 };
    await awayFromBoundary(short.windowMs, 5_000);
    await a.hit("k", short);
    await a.hit("k", short);
    assert.equal((await a.hit("k", short)).allowed, false);
    assert.equal((await a.hit("k", long)).allowed, true);
  });

  test("peek does not count a hit", async ({ a }) => {
    const rule = { limit: 2, windowMs: 60_000 };
    await awayFromBoundary(rule.windowMs, 5_000);
    for (let i = 0; i < 5; i++) assert.equal((await a.peek("p", rule)).allowed, true);
    assert.equal((await a.hit("p", rule)).remaining, 1);
    assert.equal((await a.peek("p", rule)).remaining, 1);
    await a.hit("p", rule);
    const peeked = await a.peek("p", rule);
    assert.equal(peeked.allowed, false);
    assert.ok(peeked.retryAfterMs > 0);
  });

  test("does not count refused hits and lets the key through once the window slid", async ({ a }) => {
    const rule = { limit: 3, windowMs: 1_000 };
    await awayFromBoundary(rule.windowMs, 300);
    for (let i = 0; i < 3; i++) assert.equal((await a.hit("slide", rule)).allowed, true);
    let refused;
    for (let i = 0; i < 20; i++) refused = await a.hit("slide", rule);
    assert.equal(refused!.allowed, false);
    // Measures time: the real window must slide past the refused hits.
    await sleep(refused!.retryAfterMs + 100);
    assert.equal((await a.hit("slide", rule)).allowed, true);
  });

  test("grants exactly the limit to concurrent hits from two clients", async ({ a, b }) => {
    const rule = { limit: 20, windowMs: 60_000 };
    await awayFromBoundary(rule.windowMs, 10_000);
    const decisions = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).hit("race", rule)),
    );
    assert.equal(decisions.filter((d) => d.allowed).length, 20);
    assert.equal((await a.hit("race", rule)).allowed, false);
    assert.equal((await b.hit("race", rule)).allowed, false);
  });
}

Deno.test({
  name: "redis client adapter strips the script flags Redis 7.0 refuses and maps EVALSHA",
  ignore: skipWithoutRedis(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis();
    const client = createRedisClient(redis.url);
    try {
      const script = '#!lua flags=allow-key-locking\nreturn redis.call("INCRBY", KEYS[1], ARGV[1])';
      const digest = new Uint8Array(
        await crypto.subtle.digest("SHA-1", new TextEncoder().encode(script)),
      );
      const hash = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
      const key = `relais:test:${crypto.randomUUID()}`;
      // Unknown to Redis yet: the library relies on this NOSCRIPT to fall back to EVAL.
      await assert.rejects(client.evalsha(hash, [key], [1]), /NOSCRIPT/);
      assert.equal(await client.eval(script, [key], [2]), 2);
      assert.equal(await client.evalsha(hash, [key], [3]), 5);
      assert.equal(client.mappedCalls, 1);
      await client.del(key);
    } finally {
      await client.close();
      await redis.stop();
    }
  },
});

Deno.test("kv rate limiter counts concurrent hits of one key together in a few commits", async () => {
  const raw = await Deno.openKv(":memory:");
  let commits = 0;
  const kv = new Proxy(raw, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = () => {
            commits++;
            return commit();
          };
          return op;
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const limiter = createKvRateLimiter(kv);
  try {
    const rule = { limit: 30, windowMs: 60_000 };
    const decisions = await Promise.all(
      Array.from({ length: 50 }, () => limiter.hit("events:svc", rule)),
    );
    assert.equal(decisions.filter((d) => d.allowed).length, 30);
    assert.equal(decisions.filter((d) => !d.allowed).every((d) => d.retryAfterMs > 0), true);
    assert.ok(commits <= 3, `${commits} commits`);
    assert.deepEqual(
      decisions.filter((d) => d.allowed).map((d) => d.remaining).sort((x, y) => y - x),
      Array.from({ length: 30 }, (_, i) => 29 - i),
    );
    assert.equal((await limiter.peek("events:svc", rule)).allowed, false);
  } finally {
    await limiter.close();
    raw.close();
  }
});
