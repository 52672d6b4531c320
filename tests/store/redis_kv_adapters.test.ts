/**
 * Every Deno KV adapter's own test suite, run again on the Redis KV: the directory,
 * preferences, mail queue (through the mailer), kill switches, conversations, the KV rate
 * limiter and the store's KV-specific tests.
 *
 * The suites are imported unchanged, with every assertion, after two substitutions made
 * for this test module only (each test module runs in its own worker): a database a test
 * opens with `Deno.openKv(":memory:")` is a fresh Redis KV database instead, and each
 * test's name starts with `on redis: `. A test that opens a file database keeps Deno KV.
 */

import { ignoreRedis, openRedisKv } from "../_support/redis_kv.ts";

/** The suites, each with the test names that open a KV database (`undefined`: all). */
const SUITES: { module: string; only?: RegExp }[] = [
  { module: "../directory/kv_directory.test.ts" },
  { module: "../preferences/preferences_cache.test.ts" },
  { module: "../mail/mailer.test.ts" },
  { module: "../controls/control_store.test.ts", only: /^kv / },
  { module: "../messaging/kv_conversation_store.test.ts" },
  { module: "../ratelimit/rate_limiter.test.ts", only: /^kv (\(in memory\) |rate limiter )/ },
  // The store's tests beyond the contract (which `redis_kv_store.test.ts` runs).
  { module: "./kv_store.test.ts", only: /^kv store / },
  { module: "./kv_store_fanout.test.ts" },
];

const register = Deno.test;
let only: RegExp | undefined;

/** `Deno.test` under another name, for the suites' tests that open a KV database. */
function renamed(...args: unknown[]): void {
  let definition: Deno.TestDefinition;
  if (typeof args[0] === "function") {
    definition = { name: args[0].name, fn: args[0] as Deno.TestDefinition["fn"] };
  } else if (typeof args[0] === "string") {
    definition = typeof args[1] === "function"
      ? { name: args[0], fn: args[1] as Deno.TestDefinition["fn"] }
      : { ...(args[1] as object), name: args[0], fn: args[2] as Deno.TestDefinition["fn"] };
  } else {
    definition = args[0] as Deno.TestDefinition;
  }
  if (only && !only.test(definition.name)) return;
  register({
    ...definition,
    name: `on redis: ${definition.name}`,
    ignore: definition.ignore || ignoreRedis,
  });
}

if (ignoreRedis) {
  // One line has said that the Redis tests are skipped; register nothing.
} else {
  const openKv = Deno.openKv;
  const substitutes = {
    openKv: (path?: string) =>
      path === ":memory:" ? Promise.resolve(openRedisKv()) : openKv.call(Deno, path),
    test: renamed,
  };
  for (const [name, value] of Object.entries(substitutes)) {
    Object.defineProperty(Deno, name, { value, configurable: true, writable: true });
  }
  for (const suite of SUITES) {
    only = suite.only;
    await import(suite.module);
  }
  only = undefined;
}
