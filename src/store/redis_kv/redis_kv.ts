/**
 * A Deno KV-compatible database on Redis (Redis 7, KeyDB, Valkey), implementing the part
 * of `Deno.Kv` relais uses, so that every KV adapter runs on it unchanged: `get`,
 * `getMany`, `list` (prefix / start / end selectors, `limit`, `reverse`, `batchSize`),
 * `set`, `delete`, `atomic()` with `check`, `set`, `delete`, `sum`, `min`, `max`, and
 * `close`.
 *
 * Layout, under one hash tag `{<prefix>}` (one Redis Cluster slot per database):
 * - `{<prefix>}:v:<key>`: a value (`value_codec.ts`), `<key>` the order-preserving bytes
 *   of the Deno KV key (`key_codec.ts`); `expireIn` is a `PEXPIRE` on it;
 * - `{<prefix>}:i`: the index, a sorted set of every key's bytes (all scores 0), read
 *   with `ZRANGEBYLEX` in Deno KV's key order; an expired value's member is dropped when
 *   a `list` meets it;
 * - `{<prefix>}:c`: the versionstamp counter, incremented once per commit.
 *
 * Every commit is one Lua script (`scripts.ts`, by `EVALSHA`): its checks, then all its
 * mutations or none. It enforces the limits it declares (`REDIS_KV_LIMITS`, read by
 * `kvLimitsOf`): Deno KV's on each key and value, so that adapters sized for Deno KV
 * behave the same here, and wider ones on one commit and one `getMany`, which writers
 * that size by the database (the fan-out job) use.
 *
 * With Redis out of reach, every operation fails within about two seconds with the
 * `store_unavailable` error (503, `Retry-After`), and works again once the client has
 * reconnected, by itself: a command is written only on a ready connection (it never waits
 * in a queue to run after its caller was refused), one in flight when the connection drops
 * fails at once, and one Redis leaves unanswered fails after `COMMAND_TIMEOUT_MS` (`link.ts`).
 * A commit that failed so may still have been applied: its caller retries it as it is.
 */

import { Buffer } from "node:buffer";
import type { RedisClient } from "../../cluster/redis_connect.ts";
import { KV_LIMITS_KEY, type KvLimits, REDIS_KV_LIMITS } from "../kv/limits.ts";
import { RedisAtomicOperation } from "./atomic.ts";
import { ByteWriter, decodeKey, encodeKeyInto, type KeyRange, selectorRange } from "./key_codec.ts";
import { Link, redisKvClient, script, Space } from "./link.ts";
import { LIST_SCRIPT } from "./scripts.ts";
import { decodeStored } from "./value_codec.ts";

/** Options of {@linkcode createRedisKv}. */
export interface RedisKvOptions {
  /** Keeps this database apart from others on the same Redis; its hash tag (default `relais`). */
  prefix?: string;
}

// The limits it declares (`kvLimitsOf`), enforced here on reads (and by `atomic.ts` on
// commits).
const MAX_READ_KEY_BYTES = REDIS_KV_LIMITS.readKeyBytes;
const MAX_GET_MANY = REDIS_KV_LIMITS.getMany;
/** Entries one list round trip answers at most. */
const MAX_BATCH = 1000;
const DEFAULT_BATCH = 500;

const runList = script(LIST_SCRIPT);

function lexBound(bytes: Uint8Array | undefined, exclusive: boolean, open: "-" | "+"): Buffer {
  if (!bytes) return Buffer.from(open);
  return Buffer.concat([Buffer.from(exclusive ? "(" : "["), bytes]);
}

/** The Redis KV database: the `Deno.Kv` methods relais uses. */
class RedisKv {
  #closed = false;

  /** Wider than Deno KV's on one commit and one read (see `kvLimitsOf`). */
  readonly [KV_LIMITS_KEY]: KvLimits = REDIS_KV_LIMITS;

  constructor(readonly link: Link, readonly space: Space) {}

  async get<T = unknown>(key: Deno.KvKey): Promise<Deno.KvEntryMaybe<T>> {
    const [entry] = await this.getMany<T[]>([key]);
    return entry as Deno.KvEntryMaybe<T>;
  }

  async getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
  ): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }> {
    if (keys.length > MAX_GET_MANY) {
      throw new TypeError(`Too many ranges (max ${MAX_GET_MANY})`);
    }
    if (keys.length === 0) return [] as unknown as { [K in keyof T]: Deno.KvEntryMaybe<T[K]> };
    // Every name encoded in place after the prefix, one after the other, and copied out
    // once: each name is a view of that one copy.
    const w = new ByteWriter(64 * keys.length);
    const ends = keys.map((key) => {
      const start = w.length;
      w.bytes(this.space.valuePrefix);
      encodeKeyInto(w, key as Deno.KvKey);
      if (w.length - start - this.space.valuePrefix.length > MAX_READ_KEY_BYTES) {
        throw new TypeError(`Key too large for write (max ${REDIS_KV_LIMITS.writeKeyBytes} bytes)`);
      }
      return w.length;
    });
    const all = w.done();
    const names = ends.map((end, i) => {
      const start = i === 0 ? 0 : ends[i - 1];
      return Buffer.from(all.buffer, all.byteOffset + start, end - start);
    });
    const stored = await this.link.run((r) => r.mgetBuffer(...names));
    return keys.map((key, i) => {
      const raw = stored[i];
      if (!raw) return { key, value: null, versionstamp: null };
      return { key, ...decodeStored(raw) };
    }) as unknown as { [K in keyof T]: Deno.KvEntryMaybe<T[K]> };
  }

  list<T = unknown>(
    selector: Deno.KvListSelector,
    options: Deno.KvListOptions = {},
  ): AsyncIterableIterator<Deno.KvEntry<T>> {
    if (options.cursor !== undefined) throw new TypeError("The Redis KV lists without cursors");
    return this.#walk<T>(selectorRange(selector), options);
  }

  async *#walk<T>(
    range: KeyRange,
    options: Deno.KvListOptions,
  ): AsyncGenerator<Deno.KvEntry<T>> {
    const reverse = options.reverse ?? false;
    const batch = Math.min(MAX_BATCH, Math.max(1, options.batchSize ?? DEFAULT_BATCH));
    let remaining = options.limit ?? Infinity;
    let lo = lexBound(range.from, range.fromExclusive ?? false, "-");
    let hi = lexBound(range.to, true, "+");
    while (remaining > 0) {
      const want = Math.min(batch, remaining);
      const reply = await runList(this.link, [this.space.index], [
        this.space.valuePrefix,
        lo,
        hi,
        String(want),
        reverse ? "1" : "0",
      ]) as Buffer[];
      for (let i = 2; i < reply.length; i += 2) {
        remaining--;
        yield { key: decodeKey(reply[i]), ...decodeStored(reply[i + 1]) } as Deno.KvEntry<T>;
      }
      if (reply[0].toString() === "1") return;
      const last = Buffer.concat([Buffer.from("("), reply[1]]);
      if (reverse) hi = last;
      else lo = last;
    }
  }

  async set(
    key: Deno.KvKey,
    value: unknown,
    options?: { expireIn?: number },
  ): Promise<Deno.KvCommitResult> {
    const res = await this.atomic().set(key, value, options).commit();
    return res as Deno.KvCommitResult;
  }

  async delete(key: Deno.KvKey): Promise<void> {
    await this.atomic().delete(key).commit();
  }

  atomic(): Deno.AtomicOperation {
    return new RedisAtomicOperation(this.link, this.space) as unknown as Deno.AtomicOperation;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // As Deno KV's: at once. A write whose commit has not answered was never accepted.
    this.link.redis.disconnect();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * A Deno KV-compatible database in `redis` under `options.prefix`; closing it closes
 * `redis`.
 */
export function createRedisKv(redis: RedisClient, options: RedisKvOptions = {}): Deno.Kv {
  const space = new Space(options.prefix ?? "relais");
  return new RedisKv(new Link(redis), space) as unknown as Deno.Kv;
}

/**
 * Connects to `url` (`redis://`, `rediss://`, or a Redis Cluster's `redis+cluster://`,
 * see `connectRedis`) and opens the database of `options.prefix`.
 */
export function connectRedisKv(url: string, options: RedisKvOptions = {}): Deno.Kv {
  return createRedisKv(redisKvClient(url), options);
}
