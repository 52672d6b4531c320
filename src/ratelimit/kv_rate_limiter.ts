/**
 * The Deno KV adapter of the rate limiter port, the embedded default.
 *
 * A hit reads the current and previous window counts and commits the new count with a
 * `check()` on the current one, so two processes on one KV file never both take the
 * last slot: the loser re-reads and decides again. Inside one process, hits on the same
 * key are queued, so concurrent requests do not burn commits racing each other.
 */

import * as keys from "../store/keys.ts";
import type { RateLimiter, RateRule } from "./rate_limiter.ts";
import { decide, windowOf } from "./rate_limiter.ts";

/** Options of {@linkcode createKvRateLimiter}. */
export interface KvRateLimiterOptions {
  now?: () => number;
}

const MAX_ATTEMPTS = 100;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates a rate limiter counting in Deno KV. */
export function createKvRateLimiter(kv: Deno.Kv, options: KvRateLimiterOptions = {}) {
  const now = options.now ?? Date.now;
  const queues = new Map<string, Promise<unknown>>();

  async function read(key: string, rule: RateRule, at: number) {
    const window = windowOf(at, rule);
    const [current, previous] = await kv.getMany<[number, number]>([
      keys.rateWindowKey(key, rule.windowMs, window),
      keys.rateWindowKey(key, rule.windowMs, window - 1),
    ]);
    return { window, current, previous };
  }

  async function hitOnce(key: string, rule: RateRule) {
    for (let attempt = 1;; attempt++) {
      const at = now();
      const { window, current, previous } = await read(key, rule, at);
      const decision = decide(
        { current: current.value ?? 0, previous: previous.value ?? 0 },
        at,
        rule,
      );
      if (!decision.allowed) return decision;
      let committed = false;
      try {
        const res = await kv.atomic()
          .check(current)
          .set(keys.rateWindowKey(key, rule.windowMs, window), (current.value ?? 0) + 1, {
            // Kept while it can still weigh as the previous window, plus a margin.
            expireIn: 2 * rule.windowMs + 60_000,
          })
          .commit();
        committed = res.ok;
      } catch (error) {
        // Another process holding the SQLite write lock is a lost race too.
        if (!/database is locked|busy/i.test(String(error))) throw error;
      }
      if (committed) return decision;
      if (attempt >= MAX_ATTEMPTS) {
        throw new Error(`Cannot count a hit for rate limit key "${key}": too much contention`);
      }
      await pause(Math.random() * Math.min(attempt, 10));
    }
  }

  /** Runs hits of one key one after the other within this process. */
  function serialized<T>(key: string, run: () => Promise<T>): Promise<T> {
    const previous = queues.get(key) ?? Promise.resolve();
    const next = previous.then(run, run);
    const settled = next.then(() => {}, () => {});
    queues.set(key, settled);
    settled.then(() => {
      if (queues.get(key) === settled) queues.delete(key);
    });
    return next;
  }

  return {
    kind: "kv",
    hit: (key, rule) => serialized(`${rule.windowMs}:${key}`, () => hitOnce(key, rule)),
    async peek(key, rule) {
      const at = now();
      const { current, previous } = await read(key, rule, at);
      return decide(
        { current: current.value ?? 0, previous: previous.value ?? 0 },
        at,
        rule,
        false,
      );
    },
    async close() {
      await Promise.allSettled([...queues.values()]);
    },
  } satisfies RateLimiter;
}
