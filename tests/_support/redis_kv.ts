/**
 * Redis KV databases for tests: one `redis-server` (or `REDIS_URL`) per test process,
 * started when this module is loaded (outside any test, so no test owns the process),
 * and one fresh database, under its own random prefix, per {@linkcode openRedisKv}.
 */

import { Redis } from "ioredis";
import { connectRedisKv } from "../../src/store/redis_kv/redis_kv.ts";
import { skipWithoutRedis, startRedis, type TestRedis } from "./redis.ts";

/** The `ignore` flag of the tests that need Redis (see `skipWithoutRedis`). */
export const ignoreRedis: boolean = skipWithoutRedis();

const server: TestRedis | undefined = ignoreRedis ? undefined : await startRedis();
if (server) globalThis.addEventListener("unload", () => void server.stop());

/** The URL of the tests' Redis; throws when the Redis tests are skipped. */
export function redisUrl(): string {
  if (!server) throw new Error("No Redis for the tests");
  return server.url;
}

/** A fresh prefix: a database no other test shares. */
export const freshPrefix = (): string => `relais:test:${crypto.randomUUID()}`;

/** Opens the Redis KV database of `prefix` (a fresh one by default). */
export function openRedisKv(prefix: string = freshPrefix()): Deno.Kv {
  return connectRedisKv(redisUrl(), { prefix });
}

/** A plain client on the tests' Redis, for looking under the KV. */
export function rawRedis(): Redis {
  const redis = new Redis(redisUrl());
  redis.on("error", () => {});
  return redis;
}
