/**
 * The Redis adapter of the rate limiter port, through `@upstash/ratelimit`'s sliding
 * window over the small client adapter of `redis_client.ts`.
 *
 * One `Ratelimit` instance is kept per rule (the library fixes the rule per instance);
 * its ephemeral cache is off so every process asks Redis, and its own timeout is off so
 * an unreachable Redis rejects (the caller decides what that means) instead of silently
 * allowing.
 */

import { Ratelimit } from "@upstash/ratelimit";
import type { RedisClientAdapter } from "./redis_client.ts";
import type { RateDecision, RateLimiter, RateRule } from "./rate_limiter.ts";

/** Options of {@linkcode createRedisRateLimiter}. */
export interface RedisRateLimiterOptions {
  /** Key prefix in Redis, used as the keys' hash tag `{<prefix>}` (default `relais:rl`). */
  prefix?: string;
  /** Also close the client when the limiter is closed (default true). */
  ownsClient?: boolean;
}

/** Creates a rate limiter counting in Redis. */
export function createRedisRateLimiter(
  client: RedisClientAdapter,
  options: RedisRateLimiterOptions = {},
) {
  const prefix = options.prefix ?? "relais:rl";
  const limiters = new Map<string, Ratelimit>();

  function limiterFor(rule: RateRule): Ratelimit {
    const id = `${rule.limit}/${rule.windowMs}`;
    let limiter = limiters.get(id);
    if (!limiter) {
      limiter = new Ratelimit({
        // deno-lint-ignore no-explicit-any
        redis: client as any,
        limiter: Ratelimit.slidingWindow(rule.limit, `${rule.windowMs} ms`),
        // One hash tag: a rule's two window keys (current, previous) in one script, one
        // Redis Cluster slot.
        prefix: `{${prefix}}:${rule.windowMs}`,
        ephemeralCache: false,
        analytics: false,
        timeout: 0,
        enableProtection: false,
        enableTelemetry: false,
      });
      limiters.set(id, limiter);
    }
    return limiter;
  }

  function decision(
    allowed: boolean,
    rule: RateRule,
    remaining: number,
    reset: number,
  ): RateDecision {
    const now = Date.now();
    return {
      allowed,
      limit: rule.limit,
      remaining: Math.max(0, remaining),
      resetAt: reset,
      retryAfterMs: allowed ? 0 : Math.max(1, reset - now),
    };
  }

  return {
    kind: "redis",
    async hit(key, rule) {
      const res = await limiterFor(rule).limit(key);
      return decision(res.success, rule, res.remaining, res.reset);
    },
    async peek(key, rule) {
      const res = await limiterFor(rule).getRemaining(key);
      return decision(res.remaining > 0, rule, res.remaining, res.reset);
    },
    async close() {
      if (options.ownsClient ?? true) await client.close();
    },
  } satisfies RateLimiter;
}
