/**
 * A small Redis client adapter with the shape `@upstash/ratelimit` calls (`eval`,
 * `evalsha`, `get`, `set`, `del`), over a plain TCP Redis connection (`ioredis`).
 *
 * The library's Lua scripts start with `#!lua flags=allow-key-locking`, a flag that
 * Redis 7.0 (Debian's `redis-server`) refuses. The adapter strips that first line, runs
 * the stripped script with `EVAL` (which caches it), and remembers which stripped hash
 * stands for the library's hash, so the library's `EVALSHA` calls keep hitting the script
 * cache. After a Redis restart, or on a Redis Cluster node that has not run it yet, the
 * stripped script is not there: `EVALSHA` answers `NOSCRIPT`, the library falls back to
 * `EVAL`, and the adapter runs it again.
 */

import { connectRedis } from "../cluster/redis_connect.ts";

/** The commands `@upstash/ratelimit` uses, as it calls them. */
export interface UpstashRedisLike {
  eval(script: string, keys: string[], args: unknown[]): Promise<unknown>;
  evalsha(hash: string, keys: string[], args: unknown[]): Promise<unknown>;
  get(key: string): Promise<string | null>;
  set(key: string, value: unknown): Promise<unknown>;
  del(...keys: string[]): Promise<number>;
}

/** A connected adapter: the library-facing commands plus what relais needs itself. */
export interface RedisClientAdapter extends UpstashRedisLike {
  ping(): Promise<boolean>;
  /** How many `EVALSHA` calls reached Redis with a stripped script's hash. */
  readonly mappedCalls: number;
  close(): Promise<void>;
}

/** Options of {@linkcode createRedisClient}. */
export interface RedisClientOptions {
  /** Per-command timeout in ms (default 2000); a timed-out command rejects. */
  commandTimeoutMs?: number;
}

const FLAGS_LINE = /^#!lua[^\n]*\n/;

async function sha1Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `null` and numbers as Redis arguments. */
function toArgs(args: unknown[]): (string | number)[] {
  return args.map((
    a,
  ) => (a === null || a === undefined ? "" : typeof a === "number" ? a : String(a)));
}

/**
 * Connects to `url` (`redis://`, `rediss://`, or a Redis Cluster's `redis+cluster://`,
 * see `connectRedis`) and returns the adapter.
 */
export function createRedisClient(
  url: string,
  options: RedisClientOptions = {},
): RedisClientAdapter {
  const redis = connectRedis(url, {
    // Fail fast: a limiter that cannot reach Redis must not hold requests for long.
    maxRetriesPerRequest: 1,
    commandTimeout: options.commandTimeoutMs ?? 2000,
    lazyConnect: false,
  });
  // Connection errors surface on the commands; without a listener ioredis logs them.
  redis.on("error", () => {});
  /** The library's script hash → the hash of the same script without its flags line. */
  const stripped = new Map<string, string>();
  let mappedCalls = 0;

  return {
    async eval(script, keys, args) {
      const body = script.replace(FLAGS_LINE, "");
      if (body === script) return await redis.eval(script, keys.length, ...keys, ...toArgs(args));
      // `EVAL` caches the script on the node that runs it, the one of its keys' slot; a
      // `SCRIPT LOAD` on a Redis Cluster would go to any node.
      const [original, loaded] = await Promise.all([sha1Hex(script), sha1Hex(body)]);
      stripped.set(original, loaded);
      return await redis.eval(body, keys.length, ...keys, ...toArgs(args));
    },
    async evalsha(hash, keys, args) {
      const mapped = stripped.get(hash);
      if (mapped) mappedCalls++;
      return await redis.evalsha(mapped ?? hash, keys.length, ...keys, ...toArgs(args));
    },
    get: (key) => redis.get(key),
    set: (key, value) => redis.set(key, String(value)),
    del: (...keys) => redis.del(...keys),
    async ping() {
      return (await redis.ping()) === "PONG";
    },
    get mappedCalls() {
      return mappedCalls;
    },
    async close() {
      try {
        await redis.quit();
      } catch {
        redis.disconnect();
      }
    },
  };
}
