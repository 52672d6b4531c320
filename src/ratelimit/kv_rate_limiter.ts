/**
 * The Deno KV adapter of the rate limiter port, the embedded default.
 *
 * A hit reads the current and previous window counts and commits the new count with a
 * `check()` on the current one, so two processes on one KV file never both take the
 * last slot: the loser re-reads and decides again. Inside one process, hits on the same
 * key are queued and the ones that wait together are counted in one commit, so
 * concurrent requests neither burn commits racing each other nor wait in single file.
 */

import * as keys from "../store/keys.ts";
import type { RateDecision, RateLimiter, RateRule } from "./rate_limiter.ts";
import { decide, windowOf } from "./rate_limiter.ts";

/** Options of {@linkcode createKvRateLimiter}. */
export interface KvRateLimiterOptions {
  now?: () => number;
}

const MAX_ATTEMPTS = 100;

interface Waiting {
  rule: RateRule;
  resolve(decision: RateDecision): void;
  reject(error: unknown): void;
}

/** The hits of one key waiting for the commit in flight, and that commit's round. */
interface Queue {
  waiting: Waiting[];
  running: Promise<void>;
  busy?: boolean;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates a rate limiter counting in Deno KV. */
export function createKvRateLimiter(kv: Deno.Kv, options: KvRateLimiterOptions = {}) {
  const now = options.now ?? Date.now;
  const queues = new Map<string, Queue>();

  async function read(key: string, rule: RateRule, at: number) {
    const window = windowOf(at, rule);
    const [current, previous] = await kv.getMany<[number, number]>([
      keys.rateWindowKey(key, rule.windowMs, window),
      keys.rateWindowKey(key, rule.windowMs, window - 1),
    ]);
    return { window, current, previous };
  }

  /**
   * Counts `n` hits of one key in one commit: each is decided in turn on the counts the
   * ones before it leave, and the allowed ones are added together.
   */
  async function hitMany(key: string, rule: RateRule, n: number): Promise<RateDecision[]> {
    for (let attempt = 1;; attempt++) {
      const at = now();
      const { window, current, previous } = await read(key, rule, at);
      const decisions: RateDecision[] = [];
      let allowed = 0;
      for (let i = 0; i < n; i++) {
        const decision = decide(
          { current: (current.value ?? 0) + allowed, previous: previous.value ?? 0 },
          at,
          rule,
        );
        if (decision.allowed) allowed++;
        decisions.push(decision);
      }
      if (allowed === 0) return decisions;
      let committed = false;
      try {
        const res = await kv.atomic()
          .check(current)
          .set(keys.rateWindowKey(key, rule.windowMs, window), (current.value ?? 0) + allowed, {
            // Kept while it can still weigh as the previous window, plus a margin.
            expireIn: 2 * rule.windowMs + 60_000,
          })
          .commit();
        committed = res.ok;
      } catch (error) {
        // Another process holding the SQLite write lock is a lost race too.
        if (!/database is locked|busy/i.test(String(error))) throw error;
      }
      if (committed) return decisions;
      if (attempt >= MAX_ATTEMPTS) {
        throw new Error(`Cannot count a hit for rate limit key "${key}": too much contention`);
      }
      await pause(Math.random() * Math.min(attempt, 10));
    }
  }

  /**
   * Runs the hits of one key one commit at a time within this process; the hits that
   * arrive while a commit is in flight are counted together in the next one, so a busy
   * key (one service key publishing) costs one read and one commit per round, not per hit.
   */
  function batched(id: string, key: string, rule: RateRule): Promise<RateDecision> {
    return new Promise((resolve, reject) => {
      let queue = queues.get(id);
      if (!queue) {
        queue = { waiting: [], running: Promise.resolve() };
        queues.set(id, queue);
      }
      queue.waiting.push({ rule, resolve, reject });
      if (queue.waiting.length === 1 && !queue.busy) queue.running = drain(id, key, queue);
    });
  }

  async function drain(id: string, key: string, queue: Queue) {
    queue.busy = true;
    try {
      while (queue.waiting.length > 0) {
        // One round takes the hits with the same rule as the first one.
        const rule = queue.waiting[0].rule;
        const same = (w: Waiting) =>
          w.rule.limit === rule.limit && w.rule.windowMs === rule.windowMs;
        const round = queue.waiting.filter(same);
        queue.waiting = queue.waiting.filter((w) => !same(w));
        try {
          const decisions = await hitMany(key, rule, round.length);
          round.forEach((w, i) => w.resolve(decisions[i]));
        } catch (error) {
          for (const w of round) w.reject(error);
        }
      }
    } finally {
      queue.busy = false;
      if (queues.get(id) === queue && queue.waiting.length === 0) queues.delete(id);
    }
  }

  return {
    kind: "kv",
    hit: (key, rule) => batched(`${rule.windowMs}:${key}`, key, rule),
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
      await Promise.allSettled([...queues.values()].map((q) => q.running));
    },
  } satisfies RateLimiter;
}
