/**
 * The in-memory adapter of the rate limiter port: one process, nothing durable.
 *
 * Used by apps built without a KV handle (route tests) and as the reference the other
 * adapters are compared with in the contract test.
 */

import type { RateLimiter, RateRule } from "./rate_limiter.ts";
import { decide, windowOf } from "./rate_limiter.ts";

/** Options of {@linkcode createMemoryRateLimiter}. */
export interface MemoryRateLimiterOptions {
  now?: () => number;
  /** Windows kept at most; the oldest are dropped beyond it (default 100 000). */
  maxEntries?: number;
}

/** Creates a rate limiter that counts in this process's memory. */
export function createMemoryRateLimiter(options: MemoryRateLimiterOptions = {}) {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 100_000;
  // key → window → count; a Map keeps insertion order, so the first entries are the oldest.
  const windows = new Map<string, { expiresAt: number; count: number }>();

  const name = (key: string, rule: RateRule, window: number) =>
    `${rule.windowMs}\u0000${window}\u0000${key}`;

  function count(key: string, rule: RateRule, window: number, at: number): number {
    const entry = windows.get(name(key, rule, window));
    return entry && entry.expiresAt > at ? entry.count : 0;
  }

  function counts(key: string, rule: RateRule, at: number) {
    const window = windowOf(at, rule);
    return {
      current: count(key, rule, window, at),
      previous: count(key, rule, window - 1, at),
    };
  }

  function sweep(at: number) {
    for (const [k, entry] of windows) {
      if (windows.size < maxEntries && entry.expiresAt > at) break;
      windows.delete(k);
    }
  }

  return {
    kind: "memory",
    hit(key, rule) {
      const at = now();
      const decision = decide(counts(key, rule, at), at, rule);
      if (decision.allowed) {
        const window = windowOf(at, rule);
        const k = name(key, rule, window);
        const entry = windows.get(k);
        if (entry) entry.count++;
        else {
          sweep(at);
          windows.set(k, { count: 1, expiresAt: (window + 2) * rule.windowMs });
        }
      }
      return Promise.resolve(decision);
    },
    peek(key, rule) {
      const at = now();
      return Promise.resolve(decide(counts(key, rule, at), at, rule, false));
    },
    close() {
      windows.clear();
      return Promise.resolve();
    },
  } satisfies RateLimiter;
}
