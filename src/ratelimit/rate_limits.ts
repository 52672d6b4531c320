/**
 * The configured rate limits by name, enforced on top of the rate limiter port.
 *
 * {@linkcode RateLimits.consume} throws a `rate_limited` {@linkcode AppError} carrying
 * `retryAfterMs`, which the HTTP edge turns into `429` + `Retry-After` and the WebSocket
 * edge into an `error` frame with `retry_after_ms`. A limiter that fails (Redis down)
 * lets the request through and reports it: limits protect the server, they must not
 * take it down with them.
 */

import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import type { RateDecision, RateLimiter, RateRule } from "./rate_limiter.ts";

/** The named limits of the configuration. */
export type RateName = keyof Omit<Config["rate"], "limiter" | "redisPrefix">;

const WHAT: Record<RateName, string> = {
  messages: "messages",
  conversations: "new conversations",
  events: "events",
  connects: "connection attempts",
  authFailures: "failed authentications",
};

/** Options of {@linkcode createRateLimits}. */
export interface RateLimitsOptions {
  /** Reports a limiter failure (the hit is allowed). */
  onError(message: string, error: unknown): void;
  /** Counts a refused hit (metrics). */
  onLimited?(name: RateName): void;
}

/** Enforces the configured limits; built by {@linkcode createRateLimits}. */
export interface RateLimits {
  readonly limiter: RateLimiter;
  /** The rule of a limit, or `undefined` when it is off. */
  rule(name: RateName): RateRule | undefined;
  /** Counts a hit of `id` against limit `name`; throws `rate_limited` when over. */
  consume(name: RateName, id: string): Promise<void>;
  /** Throws `rate_limited` if `id` is already over limit `name`, without counting a hit. */
  check(name: RateName, id: string): Promise<void>;
  /** A middleware consuming one hit of `name` for the id `keyOf` gives (none: no limit). */
  middleware(name: RateName, keyOf: (c: Context) => string | undefined): MiddlewareHandler;
}

/** The error of a refused hit, for callers that enforce a rule of their own. */
export function rateLimitedError(what: string, decision: RateDecision, windowMs: number) {
  const seconds = Math.ceil(decision.retryAfterMs / 1000);
  return new AppError(
    "rate_limited",
    `Too many ${what}: at most ${decision.limit} per ${
      formatWindow(windowMs)
    }, retry in ${seconds} s`,
    { retryAfterMs: decision.retryAfterMs },
  );
}

function formatWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}

/** Builds the enforcement of `rules` on `limiter`. */
export function createRateLimits(
  limiter: RateLimiter,
  rules: Omit<Config["rate"], "limiter" | "redisPrefix">,
  options: RateLimitsOptions,
): RateLimits {
  async function run(name: RateName, id: string, counting: boolean) {
    const rule = rules[name];
    if (!rule) return;
    let decision: RateDecision;
    try {
      const key = `${name}:${id}`;
      decision = counting ? await limiter.hit(key, rule) : await limiter.peek(key, rule);
    } catch (error) {
      options.onError(`Rate limiter "${limiter.kind}" failed; allowing the request`, error);
      return;
    }
    if (!decision.allowed) {
      options.onLimited?.(name);
      throw rateLimitedError(WHAT[name], decision, rule.windowMs);
    }
  }

  return {
    limiter,
    rule: (name) => rules[name],
    consume: (name, id) => run(name, id, true),
    check: (name, id) => run(name, id, false),
    middleware(name, keyOf) {
      return createMiddleware(async (c, next) => {
        const id = keyOf(c);
        if (id !== undefined) await run(name, id, true);
        await next();
      });
    },
  };
}
