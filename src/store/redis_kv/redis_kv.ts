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
 * mutations or none. It enforces Deno KV's limits on keys, values and commits, so that
 * adapters sized for Deno KV behave the same here.
 *
 * With Redis out of reach, every operation fails within about two seconds with the
 * `store_unavailable` error (503, `Retry-After`), and works again once the client has
 * reconnected, by itself: a command is written only on a ready connection (it never waits
 * in a queue to run after its caller was refused), one in flight when the connection drops
 * fails at once, and one Redis leaves unanswered fails after {@linkcode COMMAND_TIMEOUT_MS}.
 * A commit that failed so may still have been applied: its caller retries it as it is.
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import {
  connectRedis,
  type RedisClient,
  type RedisConnectOptions,
} from "../../cluster/redis_connect.ts";
import { storeUnavailable } from "../../errors.ts";
import { KV_LIMITS } from "../kv/limits.ts";
import { decodeKey, encodeKey, type KeyRange, selectorRange } from "./key_codec.ts";
import { COMMIT_SCRIPT, LIST_SCRIPT } from "./scripts.ts";
import { isConnectionFailure, StoreNotConnected } from "./unavailable.ts";
import { decodeStored, encodeValue, isKvU64, u64Operand } from "./value_codec.ts";

/** Options of {@linkcode createRedisKv}. */
export interface RedisKvOptions {
  /** Keeps this database apart from others on the same Redis; its hash tag (default `relais`). */
  prefix?: string;
}

// Deno KV's limits, enforced alike.
const MAX_WRITE_KEY_BYTES = KV_LIMITS.writeKeyBytes;
const MAX_READ_KEY_BYTES = KV_LIMITS.readKeyBytes;
const MAX_VALUE_BYTES = KV_LIMITS.valueBytes;
const MAX_CHECKS = KV_LIMITS.checks;
const MAX_MUTATIONS = KV_LIMITS.mutations;
const MAX_TOTAL_KEY_BYTES = KV_LIMITS.totalKeyBytes;
const MAX_TOTAL_BYTES = KV_LIMITS.totalBytes;
const MAX_GET_MANY = KV_LIMITS.getMany;
/** Entries one list round trip answers at most. */
const MAX_BATCH = 1000;
const DEFAULT_BATCH = 500;

/** How long a command waits for a connection being (re)established before it fails, ms. */
const CONNECT_WAIT_MS = 1000;
/** How long a command written to Redis may go unanswered before it fails, ms. */
const COMMAND_TIMEOUT_MS = 1500;

/** The client's options: fail fast while Redis is out of reach, reconnect for ever. */
const CLIENT_OPTIONS: RedisConnectOptions = {
  lazyConnect: false,
  // Without a ready connection a command is refused, never queued (see `Link`).
  enableOfflineQueue: false,
  // A command in flight when the connection drops fails then, and is not sent again.
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  // A server that takes commands but does not answer them (stopped, overloaded).
  commandTimeout: COMMAND_TIMEOUT_MS,
  // Reconnects for ever, soon: a node works again as soon as Redis is back.
  retryStrategy: (attempt) => Math.min(50 * attempt, 500),
};

/** The ioredis client of a Redis KV on `url` (see `connectRedis` for the URL forms). */
export function redisKvClient(url: string): RedisClient {
  const redis = connectRedis(url, CLIENT_OPTIONS);
  // Connection errors surface on the commands; without a listener ioredis logs them.
  redis.on("error", () => {});
  return redis;
}

/**
 * The commands of one database on its client: each is written once the connection is
 * ready (waiting {@linkcode CONNECT_WAIT_MS} at most for one being established), and a
 * connection failure comes out as the `store_unavailable` error.
 */
class Link {
  #ready: Promise<void> | undefined;

  constructor(readonly redis: RedisClient) {}

  /** Runs `command` on a ready connection; a connection failure becomes `store_unavailable`. */
  async run<T>(command: (redis: RedisClient) => Promise<T>): Promise<T> {
    try {
      if (this.redis.status !== "ready") await this.#connected();
      return await command(this.redis);
    } catch (error) {
      throw isConnectionFailure(error) ? storeUnavailable(error) : error;
    }
  }

  async #connected(): Promise<void> {
    const { status } = this.redis;
    if (status === "end") throw new StoreNotConnected("The connection to Redis is closed");
    if (status === "wait") this.redis.connect().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new StoreNotConnected(`No connection to Redis within ${CONNECT_WAIT_MS} ms`)),
        CONNECT_WAIT_MS,
      );
    });
    try {
      await Promise.race([this.#nextReady(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves when the connection is next ready; one listener for every waiting command. */
  #nextReady(): Promise<void> {
    if (this.#ready) return this.#ready;
    const { redis } = this;
    const ready = new Promise<void>((resolve, reject) => {
      const settle = () => {
        redis.off("ready", onReady);
        redis.off("end", onEnd);
        this.#ready = undefined;
      };
      const onReady = () => {
        settle();
        resolve();
      };
      const onEnd = () => {
        settle();
        reject(new StoreNotConnected("The connection to Redis is closed"));
      };
      redis.on("ready", onReady);
      redis.on("end", onEnd);
    });
    // Its waiters may all have given up by the time it settles.
    ready.catch(() => {});
    this.#ready = ready;
    return ready;
  }
}

/** A script run by `EVALSHA`, loaded again with `EVAL` when Redis has forgotten it. */
function script(source: string) {
  const sha = createHash("sha1").update(source).digest("hex");
  return async (link: Link, keys: Buffer[], args: (string | Buffer)[]): Promise<unknown> => {
    try {
      return await link.run((r) => r.callBuffer("EVALSHA", sha, keys.length, ...keys, ...args));
    } catch (error) {
      if (!String((error as Error).message).startsWith("NOSCRIPT")) throw error;
      return await link.run((r) => r.callBuffer("EVAL", source, keys.length, ...keys, ...args));
    }
  };
}

const runCommit = script(COMMIT_SCRIPT);
const runList = script(LIST_SCRIPT);

type Mutation =
  | { type: "set"; key: Deno.KvKey; value: unknown; expireIn?: number }
  | { type: "delete"; key: Deno.KvKey }
  | { type: "sum" | "min" | "max"; key: Deno.KvKey; value: bigint };

/** The Redis-side names and bounds of one database. */
class Space {
  readonly counter: Buffer;
  readonly index: Buffer;
  readonly valuePrefix: Buffer;

  constructor(prefix: string) {
    const tag = `{${prefix}}`;
    this.counter = Buffer.from(`${tag}:c`);
    this.index = Buffer.from(`${tag}:i`);
    this.valuePrefix = Buffer.from(`${tag}:v:`);
  }

  valueKey(encoded: Uint8Array): Buffer {
    return Buffer.concat([this.valuePrefix, encoded]);
  }
}

function lexBound(bytes: Uint8Array | undefined, exclusive: boolean, open: "-" | "+"): Buffer {
  if (!bytes) return Buffer.from(open);
  return Buffer.concat([Buffer.from(exclusive ? "(" : "["), bytes]);
}

function encodeChecked(key: Deno.KvKey, max: number): Uint8Array {
  const encoded = encodeKey(key);
  if (encoded.length > max) throw new TypeError("Key too large for write (max 2048 bytes)");
  return encoded;
}

/** An atomic operation: checks and mutations, committed by one script run. */
class RedisAtomicOperation {
  #checks: Deno.AtomicCheck[] = [];
  #mutations: Mutation[] = [];

  constructor(readonly link: Link, readonly space: Space) {}

  check(...checks: Deno.AtomicCheck[]): this {
    this.#checks.push(...checks);
    return this;
  }

  set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }): this {
    this.#mutations.push({ type: "set", key, value, expireIn: options?.expireIn });
    return this;
  }

  delete(key: Deno.KvKey): this {
    this.#mutations.push({ type: "delete", key });
    return this;
  }

  sum(key: Deno.KvKey, n: bigint): this {
    this.#mutations.push({ type: "sum", key, value: n });
    return this;
  }

  min(key: Deno.KvKey, n: bigint): this {
    this.#mutations.push({ type: "min", key, value: n });
    return this;
  }

  max(key: Deno.KvKey, n: bigint): this {
    this.#mutations.push({ type: "max", key, value: n });
    return this;
  }

  mutate(...mutations: Deno.KvMutation[]): this {
    for (const m of mutations) {
      if (m.type === "set") {
        this.set(m.key, m.value, m.expireIn === undefined ? undefined : { expireIn: m.expireIn });
      } else if (m.type === "delete") this.delete(m.key);
      else if (m.type === "sum" || m.type === "min" || m.type === "max") {
        this.#mutations.push({ type: m.type, key: m.key, value: u64Value(m.value) });
      } else throw new TypeError(`Unsupported mutation "${(m as { type: string }).type}"`);
    }
    return this;
  }

  enqueue(): this {
    throw new TypeError("The Redis KV has no queue");
  }

  async commit(): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    if (this.#checks.length > MAX_CHECKS) throw new TypeError("Too many checks (max 100)");
    if (this.#mutations.length > MAX_MUTATIONS) {
      throw new TypeError("Too many mutations (max 1000)");
    }
    const keys: Buffer[] = [this.space.counter, this.space.index];
    const checkArgs: string[] = [];
    const mutationArgs: (string | Buffer)[] = [];
    let keyBytes = 0;
    let totalBytes = 0;
    for (const { key, versionstamp } of this.#checks) {
      const encoded = encodeChecked(key, MAX_READ_KEY_BYTES);
      keyBytes += encoded.length;
      keys.push(this.space.valueKey(encoded));
      checkArgs.push(versionstamp ?? "");
    }
    for (const m of this.#mutations) {
      const encoded = encodeChecked(m.key, MAX_WRITE_KEY_BYTES);
      keyBytes += encoded.length;
      keys.push(this.space.valueKey(encoded));
      if (m.type === "set") {
        const value = encodeValue(m.value);
        if (value.length - 1 > MAX_VALUE_BYTES) {
          throw new TypeError("Value too large (max 65536 bytes)");
        }
        totalBytes += value.length;
        const expireIn = m.expireIn === undefined ? "" : String(Math.max(1, Math.ceil(m.expireIn)));
        mutationArgs.push("set", value, expireIn);
      } else if (m.type === "delete") {
        mutationArgs.push("delete", "", "");
      } else {
        mutationArgs.push(m.type, u64Operand(m.value), "");
      }
    }
    if (keyBytes > MAX_TOTAL_KEY_BYTES) {
      throw new TypeError("Total key size too large (max 81920 bytes)");
    }
    if (keyBytes + totalBytes > MAX_TOTAL_BYTES) {
      throw new TypeError("Total mutation size too large (max 819200 bytes)");
    }
    const args = [
      String(this.#checks.length),
      String(this.space.valuePrefix.length),
      ...checkArgs,
      ...mutationArgs,
    ];
    const reply = await runCommit(this.link, keys, args);
    if (reply === null) return { ok: false };
    return { ok: true, versionstamp: (reply as Buffer).toString("latin1") };
  }
}

/** The number a `KvU64` operand holds; throws on anything else. */
function u64Value(value: unknown): bigint {
  if (!isKvU64(value)) throw new TypeError("Cannot sum, min or max: the value is not a KvU64");
  return value.value;
}

/** The Redis KV database: the `Deno.Kv` methods relais uses. */
class RedisKv {
  #closed = false;

  constructor(readonly link: Link, readonly space: Space) {}

  async get<T = unknown>(key: Deno.KvKey): Promise<Deno.KvEntryMaybe<T>> {
    const [entry] = await this.getMany<T[]>([key]);
    return entry as Deno.KvEntryMaybe<T>;
  }

  async getMany<T extends readonly unknown[]>(
    keys: readonly [...{ [K in keyof T]: Deno.KvKey }],
  ): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }> {
    if (keys.length > MAX_GET_MANY) throw new TypeError("Too many ranges (max 10)");
    if (keys.length === 0) return [] as unknown as { [K in keyof T]: Deno.KvEntryMaybe<T[K]> };
    const names = keys.map((key) =>
      this.space.valueKey(encodeChecked(key as Deno.KvKey, MAX_READ_KEY_BYTES))
    );
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
