/**
 * A real Redis for tests: `REDIS_URL` when it is set (CI starts one), else a
 * `redis-server` started here on a free loopback port and stopped at the end.
 *
 * Without either, the tests that need Redis are skipped with one line saying so, except
 * in CI, where they run and fail: every such test takes its `ignore` flag from
 * {@linkcode skipWithoutRedis}.
 */

import { installed, skipUnless } from "./requirements.ts";
import { freePort, redisAnswers } from "../../src/cluster/dev/loopback.ts";

/** The program started for the tests; `RELAIS_TEST_REDIS_SERVER` names another one. */
export const REDIS_SERVER: string = Deno.env.get("RELAIS_TEST_REDIS_SERVER") || "redis-server";

/** Whether the tests can reach a Redis: `REDIS_URL` is set or the server program is installed. */
export const REDIS_AVAILABLE: boolean = Boolean(Deno.env.get("REDIS_URL")) ||
  installed(REDIS_SERVER);

/**
 * The `ignore` flag of a test that needs Redis: true, after one line saying the Redis
 * tests are skipped and how to install Redis, when it is missing outside CI.
 */
export function skipWithoutRedis(): boolean {
  return skipUnless(REDIS_AVAILABLE, {
    tests: "the Redis tests",
    missing: `"${REDIS_SERVER}" is not installed and REDIS_URL is not set`,
    install: "apt-get install -y redis-server, or set REDIS_URL",
  });
}

/** A Redis the tests can use. */
export interface TestRedis {
  url: string;
  /** Stops the server if this helper started it. */
  stop(): Promise<void>;
}

/** Returns `REDIS_URL`, or starts `redis-server` on 127.0.0.1 (fails clearly if missing). */
export async function startRedis(): Promise<TestRedis> {
  const existing = Deno.env.get("REDIS_URL");
  if (existing) return { url: existing, stop: () => Promise.resolve() };
  const port = freePort();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(REDIS_SERVER, {
      args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (error) {
    throw new Error(
      `Cannot start "${REDIS_SERVER}" for the Redis tests: install it (apt-get install -y redis-server) or set REDIS_URL`,
      { cause: error },
    );
  }
  const deadline = Date.now() + 10_000;
  while (!(await redisAnswers(port))) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`"${REDIS_SERVER}" did not answer on 127.0.0.1:${port} within 10 s`);
    }
    await new Promise((r) => setTimeout(r, 50)); // poll interval of a bounded wait
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
    },
  };
}
