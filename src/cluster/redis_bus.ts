/**
 * The cluster bus on Redis, after Socket.IO's Redis Streams adapter: every message is one
 * entry of one stream (`XADD … MAXLEN ~`), which every node reads from the last entry it
 * saw (`XREAD BLOCK` on a connection of its own). A node that loses Redis for a while
 * resumes from there once it is back, so what was published meanwhile still arrives, as
 * long as the stream has not been trimmed past it. Membership: each node writes a
 * heartbeat into a hash; a node whose heartbeat is older than three intervals is gone.
 *
 * Keys share one hash tag, `{<prefix>}`, so a Redis Cluster keeps them on one shard;
 * `url` may name one (`redis+cluster://`, see `connectRedis`).
 */

import { connectRedis } from "./redis_connect.ts";
import { backoffDelay } from "../backoff.ts";
import { type Bus, type BusNode, createTopicTable } from "./bus.ts";

/** Options of {@linkcode createRedisBus}. */
export interface RedisBusOptions {
  /** This node's id. */
  node: string;
  /** Keeps this deployment's bus apart on a shared Redis (default `relais`). */
  prefix?: string;
  /** Entries the stream keeps, about (default 10,000). */
  maxLength?: number;
  /** Longest wait of one blocking read, ms (default 1000). */
  blockMs?: number;
  /** Between two heartbeats, ms (default 1000). */
  heartbeatMs?: number;
  onError?(message: string, error: unknown): void;
}

type Entry = [id: string, fields: string[]];

/** Connects to the bus on the Redis at `url` and starts reading it. */
export function createRedisBus(url: string, options: RedisBusOptions): Bus {
  const { node } = options;
  const prefix = options.prefix ?? "relais";
  const streamKey = `{${prefix}}:bus`;
  const nodesKey = `{${prefix}}:bus:nodes`;
  const maxLength = options.maxLength ?? 10_000;
  const blockMs = options.blockMs ?? 1000;
  const heartbeatMs = options.heartbeatMs ?? 1000;
  const onError = options.onError ?? (() => {});
  const table = createTopicTable();
  // Commands, and the blocking reads on a connection of their own.
  const redis = connectRedis(url, { maxRetriesPerRequest: 1, lazyConnect: false });
  const reader = connectRedis(url, {
    maxRetriesPerRequest: 1,
    lazyConnect: false,
    connectionName: `relais-bus-reader:${node}`,
  });
  redis.on("error", () => {});
  reader.on("error", () => {});
  let running = true;
  // Only what is published from now on: a node starting has nothing to catch up on.
  let lastId = "$";

  function dispatch(entries: Entry[]) {
    for (const [id, fields] of entries) {
      lastId = id;
      const message: Record<string, string> = Object.create(null);
      for (let i = 0; i + 1 < fields.length; i += 2) message[fields[i]] = fields[i + 1];
      const topic = message.topic;
      if (topic === undefined || !table.has(topic)) continue;
      table.dispatch(
        { topic, from: message.from ?? "", data: message.data ?? "" },
        (e) => onError("A bus handler failed", e),
      );
    }
  }

  /** Resolves once the start point is pinned: what is published from then on is read. */
  let pinned!: () => void;
  const ready = new Promise<void>((resolve) => pinned = resolve);

  async function read() {
    let attempt = 0;
    while (running) {
      try {
        if (lastId === "$") {
          // Pin the starting point, so a reconnection resumes instead of skipping ahead.
          const last = await reader.xrevrange(streamKey, "+", "-", "COUNT", 1);
          lastId = last.length > 0 ? last[0][0] : "0-0";
          pinned();
        }
        const got = await reader.xread(
          "COUNT",
          500,
          "BLOCK",
          blockMs,
          "STREAMS",
          streamKey,
          lastId,
        );
        attempt = 0;
        if (got) { for (const [, entries] of got) dispatch(entries as Entry[]); }
      } catch (error) {
        if (!running) break;
        if (attempt === 0) onError("Reading the cluster bus failed", error);
        await new Promise((r) =>
          setTimeout(r, backoffDelay(attempt++, { baseMs: 100, maxMs: 5000, jitter: "equal" }))
        );
      }
    }
  }

  const beat = () =>
    redis.hset(nodesKey, node, String(Date.now())).catch((e) => onError("Bus heartbeat failed", e));
  void beat();
  const heartbeat = setInterval(beat, heartbeatMs);
  const reading = read();

  return {
    node,
    async publish(topic, data) {
      if (!running) throw new Error("The bus is closed");
      // This node's own messages come back to it too: publish once it reads (or, with
      // Redis out of reach, try and fail rather than wait for ever).
      await Promise.race([ready, new Promise((r) => setTimeout(r, 2000))]);
      await redis.xadd(
        streamKey,
        "MAXLEN",
        "~",
        maxLength,
        "*",
        "topic",
        topic,
        "from",
        node,
        "data",
        data,
      );
    },
    subscribe: (topic, handler) => table.add(topic, handler),
    ready: () => ready,
    async nodes(): Promise<BusNode[]> {
      const all = await redis.hgetall(nodesKey);
      const since = Date.now() - 3 * heartbeatMs;
      return Object.entries(all)
        .map(([id, at]) => ({ id, seenAt: Number(at) }))
        .filter((n) => n.seenAt >= since)
        .sort((a, b) => a.id.localeCompare(b.id));
    },
    async close() {
      if (!running) return;
      running = false;
      pinned();
      clearInterval(heartbeat);
      await redis.hdel(nodesKey, node).catch(() => {});
      reader.disconnect();
      await reading.catch(() => {});
      redis.disconnect();
    },
  };
}
