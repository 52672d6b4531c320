/**
 * The one place relais builds an ioredis client from a Redis URL: a plain `Redis` for one
 * server, an ioredis `Cluster` for a Redis Cluster (see `redis_url.ts` for the URL forms).
 * The store, the bus, the rate limiter and the ingest all connect through it, so each of
 * them runs on a Redis Cluster as on one server: their keys share one hash tag each, so
 * every multi-key command and script of theirs stays in one slot.
 */

import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import { parseRedisUrl } from "./redis_url.ts";

/** A connection to one Redis server or to a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** The connection options relais sets, the same on one server and on a cluster. */
export type RedisConnectOptions = Pick<
  RedisOptions,
  | "lazyConnect"
  | "enableOfflineQueue"
  | "retryStrategy"
  | "connectionName"
  | "maxRetriesPerRequest"
  | "commandTimeout"
  | "autoResendUnfulfilledCommands"
>;

/**
 * Connects to the Redis `url` names, with `options`.
 *
 * - `redis://…` or `rediss://…`: one server, a plain ioredis `Redis`.
 * - `redis+cluster://[[user]:password@]host1:port1[,host2:port2,…]` (or
 *   `rediss+cluster://` for TLS): a Redis Cluster, an ioredis `Cluster` that discovers
 *   every node from the seeds given. Options that govern the cluster as a whole
 *   (`lazyConnect`, `enableOfflineQueue`, `retryStrategy`, which becomes the cluster's
 *   `clusterRetryStrategy`) apply to it; the others, with the URL's credentials, apply
 *   to the connection to each node.
 *
 * Throws a `TypeError` when `url` is neither.
 */
export function connectRedis(url: string, options: RedisConnectOptions = {}): RedisClient {
  const target = parseRedisUrl(url);
  if (target.kind === "server") return new Redis(url, options);
  const { lazyConnect, enableOfflineQueue, retryStrategy, ...perNode } = options;
  const clusterOptions: ClusterOptions = {
    redisOptions: {
      ...perNode,
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.tls ? { tls: {} } : {}),
    },
  };
  if (lazyConnect !== undefined) clusterOptions.lazyConnect = lazyConnect;
  if (enableOfflineQueue !== undefined) clusterOptions.enableOfflineQueue = enableOfflineQueue;
  if (retryStrategy !== undefined) clusterOptions.clusterRetryStrategy = retryStrategy;
  return new Cluster(target.seeds, clusterOptions);
}
