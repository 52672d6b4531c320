/**
 * The link of a Redis KV database to its Redis: the client's options (fail fast while Redis
 * is out of reach, reconnect for ever), the commands run on a ready connection, the
 * scripts run by `EVALSHA`, and the Redis-side names of one database.
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import {
  connectRedis,
  type RedisClient,
  type RedisConnectOptions,
} from "../../cluster/redis_connect.ts";
import { storeUnavailable } from "../../errors.ts";
import { isConnectionFailure, StoreNotConnected } from "./unavailable.ts";

/** How long a command waits for a connection being (re)established before it fails, ms. */
const CONNECT_WAIT_MS = 1000;
/** How long a command written to Redis may go unanswered before it fails, ms. */
export const COMMAND_TIMEOUT_MS = 1500;

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
export class Link {
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
export function script(source: string) {
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

/** The Redis-side names and bounds of one database. */
export class Space {
  readonly counter: Buffer;
  readonly index: Buffer;
  readonly valuePrefix: Buffer;

  constructor(prefix: string) {
    const tag = `{${prefix}}`;
    this.counter = Buffer.from(`${tag}:c`);
    this.index = Buffer.from(`${tag}:i`);
    this.valuePrefix = Buffer.from(`${tag}:v:`);
  }
}
