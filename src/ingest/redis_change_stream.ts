/**
 * The change stream on Redis/KeyDB Streams with ioredis: `XREADGROUP` on a connection of
 * its own (a blocking read holds its connection), everything else on a second one.
 *
 * Both connections fail fast: a command sent while Redis is unreachable, or in flight when
 * the connection drops, rejects at once instead of waiting in ioredis's queues, and the
 * ingest backs off and resumes from the group's position.
 */

import { connectRedis, type RedisClient } from "../cluster/redis_connect.ts";
import type { ChangeStream, DeadLetterEntry, StreamEntry, StreamInfo } from "./change_stream.ts";

/** Options of {@linkcode createRedisChangeStream}. */
export interface RedisChangeStreamOptions {
  url: string;
  stream: string;
  group: string;
  consumer: string;
  /** The dead-letter stream keeps about this many entries (default 10,000). */
  deadMaxLength?: number;
}

/** How much of an original `data` a dead letter listing shows. */
const DATA_SHOWN = 2048;

type RawEntry = [string, string[] | null];

function entries(raw: unknown): StreamEntry[] {
  if (!Array.isArray(raw)) return [];
  return (raw as RawEntry[]).map(([id, flat]) => {
    if (!flat) return { id, fields: [], deleted: true };
    const fields: [string, string][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) fields.push([flat[i], flat[i + 1]]);
    return { id, fields };
  });
}

/** A flat `[key, value, key, value…]` reply as a Map. */
function pairs(flat: unknown): Map<string, unknown> {
  const map = new Map<string, unknown>();
  if (!Array.isArray(flat)) return map;
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(String(flat[i]), flat[i + 1]);
  return map;
}

function connection(url: string, name: string, timeoutMs?: number): RedisClient {
  const redis = connectRedis(url, {
    connectionName: name,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    ...(timeoutMs ? { commandTimeout: timeoutMs } : {}),
    retryStrategy: (attempt) => Math.min(100 * attempt, 2000),
  });
  // Connection errors surface on the commands; without a listener ioredis logs them.
  redis.on("error", () => {});
  return redis;
}

/** Waits until `redis` is connected, up to `timeoutMs`; a closed connection fails at once. */
function ready(redis: RedisClient, timeoutMs: number): Promise<void> {
  if (redis.status === "ready") return Promise.resolve();
  if (redis.status === "end") return Promise.reject(new Error("Connection is closed"));
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      redis.off("end", onEnd);
      if (error) reject(error);
      else resolve();
    };
    const onReady = () => done();
    const onEnd = () => done(new Error("Connection is closed"));
    const timer = setTimeout(() => done(new Error("Redis is not reachable")), timeoutMs);
    redis.on("ready", onReady);
    redis.on("end", onEnd);
  });
}

/** Reads `options.stream` as `options.consumer` of `options.group`. */
export function createRedisChangeStream(options: RedisChangeStreamOptions): ChangeStream {
  const { stream, group, consumer } = options;
  const dead = `${stream}:dead`;
  // Named, so that `CLIENT LIST` tells the ingest's connections apart.
  const name = `relais-ingest-${consumer}`.replace(/[^\w.:-]/g, "_");
  const reader = connection(options.url, name);
  const commands = connection(options.url, name, 5000);
  let closed = false;

  async function command(...args: (string | number)[]): Promise<unknown> {
    await ready(commands, 2000);
    return await commands.call(String(args[0]), ...args.slice(1));
  }

  return {
    name: stream,
    consumer,
    async ensureGroup() {
      try {
        await command("XGROUP", "CREATE", stream, group, "$", "MKSTREAM");
      } catch (error) {
        if (!String(error).includes("BUSYGROUP")) throw error;
      }
    },
    async readOwnPending(after, count) {
      const reply = await command(
        "XREADGROUP",
        "GROUP",
        group,
        consumer,
        "COUNT",
        count,
        "STREAMS",
        stream,
        after,
      ) as [string, unknown][] | null;
      return entries(reply?.[0]?.[1]);
    },
    async readNew(count, blockMs) {
      await ready(reader, 2000);
      const reply = await reader.call(
        "XREADGROUP",
        "GROUP",
        group,
        consumer,
        "COUNT",
        count,
        "BLOCK",
        blockMs,
        "STREAMS",
        stream,
        ">",
      ) as [string, unknown][] | null;
      return entries(reply?.[0]?.[1]);
    },
    async claim(minIdleMs, count) {
      const claimed: StreamEntry[] = [];
      let cursor = "0-0";
      // One pass over the pending list, a page at a time.
      do {
        const reply = await command(
          "XAUTOCLAIM",
          stream,
          group,
          consumer,
          minIdleMs,
          cursor,
          "COUNT",
          count,
        ) as [string, unknown, unknown?];
        cursor = reply[0];
        claimed.push(...entries(reply[1]));
        // Entries that left the stream while pending: Redis 7 drops them from the pending list.
      } while (cursor !== "0-0" && claimed.length < count);
      return claimed;
    },
    async ack(ids) {
      if (ids.length === 0) return;
      await command("XACK", stream, group, ...ids);
    },
    async deadLetter(entry, reason, detail) {
      const data = entry.fields.find(([name]) => name === "data")?.[1];
      await command(
        "XADD",
        dead,
        "MAXLEN",
        "~",
        options.deadMaxLength ?? 10_000,
        "*",
        "reason",
        reason,
        "detail",
        detail,
        "entry",
        entry.id,
        "consumer",
        consumer,
        ...(data === undefined ? ["fields", JSON.stringify(entry.fields)] : ["data", data]),
      );
    },
    async recentDeadLetters(limit) {
      const reply = await command("XREVRANGE", dead, "+", "-", "COUNT", limit);
      return entries(reply).map((e): DeadLetterEntry => {
        const f = new Map(e.fields);
        const data = f.get("data") ?? f.get("fields");
        return {
          id: e.id,
          entry: f.get("entry") ?? "",
          reason: f.get("reason") ?? "",
          detail: f.get("detail") ?? "",
          ...(data === undefined ? {} : { data: data.slice(0, DATA_SHOWN) }),
        };
      });
    },
    async info(): Promise<StreamInfo> {
      const [groups, length, deadLength] = await Promise.all([
        command("XINFO", "GROUPS", stream).catch((error) => {
          // No stream yet: nothing read, nothing pending.
          if (String(error).includes("no such key")) return [];
          throw error;
        }),
        command("XLEN", stream),
        command("XLEN", dead),
      ]);
      const mine = (groups as unknown[]).map(pairs).find((g) => g.get("name") === group);
      const lag = mine?.get("lag");
      return {
        lag: typeof lag === "number" ? lag : mine ? null : Number(length),
        pending: Number(mine?.get("pending") ?? 0),
        lastDeliveredId: mine ? String(mine.get("last-delivered-id")) : null,
        length: Number(length),
        deadLetters: Number(deadLength),
      };
    },
    interrupt() {
      reader.disconnect();
    },
    async close() {
      if (closed) return;
      closed = true;
      reader.disconnect();
      try {
        await commands.quit();
      } catch {
        commands.disconnect();
      }
    },
  };
}
