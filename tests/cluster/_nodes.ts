/**
 * Several cluster nodes in one test process: each its own Redis bus and its own
 * connection to one shared Redis KV database, with leases under its own node id.
 */

import type { Bus } from "../../src/cluster/bus.ts";
import { createLeases, type Leases } from "../../src/cluster/leases.ts";
import { createRedisBus } from "../../src/cluster/redis_bus.ts";
import { eventually } from "../_support/eventually.ts";
import { freshPrefix, openRedisKv, redisUrl } from "../_support/redis_kv.ts";

/** One node of a test cluster. */
export interface TestNode {
  id: string;
  bus: Bus;
  /** This node's connection to the shared database. */
  kv: Deno.Kv;
  leases: Leases;
  /** What was reported to `onError`. */
  errors: { message: string; error: unknown }[];
  onError(message: string, error: unknown): void;
  /** Dies without a word: its bus and its database connection close, its leases stay. */
  die(): Promise<void>;
}

/** Options of {@linkcode startNodes}. */
export interface StartNodesOptions {
  /** The leases' ttl, ms. */
  ttlMs: number;
  /** The buses' heartbeat interval, ms (default 1000). */
  heartbeatMs?: number;
  /** The leases' clock (default `Date.now`). */
  now?: () => number;
}

/**
 * Starts nodes `ids` on one bus prefix and one database, and resolves once each reads
 * the bus (a message published by any of them reaches all).
 */
export async function startNodes(
  ids: string[],
  options: StartNodesOptions,
): Promise<{
  nodes: TestNode[];
  /** Starts one more node on the same bus and database (an id already used: a restart). */
  add(id: string): Promise<TestNode>;
  close(): Promise<void>;
}> {
  const url = redisUrl();
  const dbPrefix = freshPrefix();
  const busPrefix = `t-${crypto.randomUUID()}`;
  const all: TestNode[] = [];

  function start(id: string): TestNode {
    const kv = openRedisKv(dbPrefix);
    const bus = createRedisBus(url, {
      node: id,
      prefix: busPrefix,
      heartbeatMs: options.heartbeatMs ?? 1000,
    });
    const errors: TestNode["errors"] = [];
    const node: TestNode = {
      id,
      bus,
      kv,
      leases: createLeases(kv, {
        node: id,
        ttlMs: options.ttlMs,
        ...(options.now ? { now: options.now } : {}),
      }),
      errors,
      onError: (message, error) => void errors.push({ message, error }),
      async die() {
        await bus.close();
        kv.close();
      },
    };
    all.push(node);
    return node;
  }

  /** Resolves once each of `nodes` heard every one of them on the bus. */
  async function ready(nodes: TestNode[]) {
    const heard = nodes.map(() => new Set<string>());
    const stops = nodes.map((n, i) => n.bus.subscribe("ready", (m) => heard[i].add(m.from)));
    // A node that starts reading after a message was published never gets it: say it
    // again until everyone heard everyone.
    await eventually(
      async () => {
        if (heard.every((h) => h.size === nodes.length)) return true;
        await Promise.all(nodes.map((n) => n.bus.publish("ready", "")));
        return false;
      },
      5000,
      "every node ready",
    );
    for (const stop of stops) stop();
  }

  const nodes = ids.map(start);
  await ready(nodes);
  return {
    nodes,
    async add(id) {
      const node = start(id);
      await ready([node]);
      return node;
    },
    async close() {
      for (const n of all) await n.die();
    },
  };
}
