/** The one place that picks the rate limiter adapter from the configuration. */

import type { Config } from "../config.ts";
import { createKvRateLimiter } from "./kv_rate_limiter.ts";
import { createMemoryRateLimiter } from "./memory_rate_limiter.ts";
import { createRedisClient } from "./redis_client.ts";
import { createRedisRateLimiter } from "./redis_rate_limiter.ts";
import type { RateLimiter } from "./rate_limiter.ts";

/** What the adapters may need besides the configuration. */
export interface RateLimiterDeps {
  /** The open KV handle, for the `kv` adapter. */
  kv?: Deno.Kv;
}

/**
 * Builds the rate limiter `config.rate.limiter` names: `redis` (default when
 * `REDIS_URL` is set), `kv` (default otherwise) or `memory`.
 */
export function createRateLimiter(
  config: Pick<Config, "rate" | "redisUrl">,
  deps: RateLimiterDeps = {},
): RateLimiter {
  const kind: string = config.rate.limiter;
  switch (kind) {
    case "memory":
      return createMemoryRateLimiter();
    case "kv":
      if (!deps.kv) throw new Error('Cannot create the "kv" rate limiter: no KV handle given');
      return createKvRateLimiter(deps.kv);
    case "redis":
      if (!config.redisUrl) {
        throw new Error('Cannot create the "redis" rate limiter: REDIS_URL is not set');
      }
      return createRedisRateLimiter(createRedisClient(config.redisUrl), {
        prefix: `${config.rate.redisPrefix}:rl`,
      });
    default:
      throw new Error(
        `Unknown rate limiter "${kind}": expected "memory", "kv" or "redis"`,
      );
  }
}
