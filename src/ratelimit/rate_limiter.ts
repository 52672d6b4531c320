/**
 * The rate limiter port: how many hits a key may make per window.
 *
 * Every adapter counts the same way, the sliding window of `@upstash/ratelimit`: hits
 * are counted per fixed window, and the previous window's count weighs in proportion to
 * how much of it still overlaps the last `windowMs`. A refused hit is not counted, so a
 * client that keeps hammering is let through again once the window has slid.
 *
 * Adapters: `memory_rate_limiter.ts` (one process), `kv_rate_limiter.ts` (Deno KV,
 * the embedded default), `redis_rate_limiter.ts` (`@upstash/ratelimit` on Redis).
 * `src/app/adapters.ts` picks one from the configuration.
 */

import type { RateRule } from "../config.ts";

export type { RateRule } from "../config.ts";

/** What a limiter answers for one key. */
export interface RateDecision {
  /** Whether the hit is allowed (and, for {@linkcode RateLimiter.hit}, counted). */
  allowed: boolean;
  limit: number;
  /** Hits left in the current window after this one. */
  remaining: number;
  /** When the current window ends, epoch ms. */
  resetAt: number;
  /** When refused: how long to wait before a retry can succeed, in ms; 0 when allowed. */
  retryAfterMs: number;
}

/** Counts hits per key; built by `rateLimiterOf` in `src/app/adapters.ts`. */
export interface RateLimiter {
  /** The adapter's name, as `RELAIS_RATE_LIMITER` spells it. */
  readonly kind: "memory" | "kv" | "redis";
  /** Counts one hit for `key` unless it would go over `rule`. */
  hit(key: string, rule: RateRule): Promise<RateDecision>;
  /** What a hit would answer now, without counting one. */
  peek(key: string, rule: RateRule): Promise<RateDecision>;
  /** Releases connections and timers. */
  close(): Promise<void>;
}

/** The two counts the sliding window is computed from. */
export interface WindowCounts {
  current: number;
  previous: number;
}

/** Index of the fixed window `now` falls in. */
export function windowOf(now: number, rule: RateRule): number {
  return Math.floor(now / rule.windowMs);
}

/** Hits that count against the rule at `now`: the current window plus the overlapping part of the previous one. */
export function usedHits(counts: WindowCounts, now: number, rule: RateRule): number {
  const elapsed = (now % rule.windowMs) / rule.windowMs;
  return Math.floor((1 - elapsed) * counts.previous) + counts.current;
}

/**
 * The decision for a hit (or a peek, `counting: false`) given the counts before it; the
 * same arithmetic as the Lua script of `@upstash/ratelimit`'s sliding window.
 */
export function decide(
  counts: WindowCounts,
  now: number,
  rule: RateRule,
  counting = true,
): RateDecision {
  const used = usedHits(counts, now, rule);
  const resetAt = (windowOf(now, rule) + 1) * rule.windowMs;
  const allowed = used < rule.limit;
  return {
    allowed,
    limit: rule.limit,
    remaining: Math.max(0, rule.limit - used - (counting && allowed ? 1 : 0)),
    resetAt,
    retryAfterMs: allowed ? 0 : Math.max(1, resetAt - now),
  };
}
