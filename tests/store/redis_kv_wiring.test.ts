/**
 * How the configuration picks the store's database: `RELAIS_CLUSTER` (`none` by default,
 * or `redis`) read by the config, and the adapters' switch that names an unknown kind.
 */

import assert from "node:assert/strict";
import { storeKvOf } from "../../src/app/adapters.ts";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { testEnv } from "../_support/server.ts";
import { ignoreRedis, redisUrl } from "../_support/redis_kv.ts";

Deno.test("RELAIS_CLUSTER picks the store's database and refuses an unknown value naming it", () => {
  assert.equal(loadConfig(testEnv()).store, "kv");
  assert.equal(loadConfig(testEnv({ RELAIS_CLUSTER: "none" })).store, "kv");
  assert.equal(loadConfig(testEnv({ RELAIS_CLUSTER: "redis" })).store, "redis");
  assert.throws(
    () => loadConfig(testEnv({ RELAIS_CLUSTER: "etcd" })),
    (e) => e instanceof ConfigError && /RELAIS_CLUSTER/.test(e.message),
  );
});

Deno.test("the store switch names an unknown kind, and the redis store needs REDIS_URL", async () => {
  using kv = await Deno.openKv(":memory:");
  const config = loadConfig(testEnv());
  assert.equal(storeKvOf(config, kv), kv, "kv: the database opened at RELAIS_KV_PATH");
  assert.throws(
    () => storeKvOf({ ...config, store: "etcd" as "kv" }, kv),
    /Unknown store "etcd": expected one of "kv", "redis"/,
  );
  assert.throws(
    () => storeKvOf({ ...config, store: "redis", redisUrl: undefined }, kv),
    /"redis" store: REDIS_URL is not set/,
  );
});

Deno.test({
  name: "the redis store opens a database on REDIS_URL under the configured prefix",
  ignore: ignoreRedis,
  async fn() {
    using deno = await Deno.openKv(":memory:");
    const prefix = `relais-test-${crypto.randomUUID()}`;
    const config = loadConfig(
      testEnv({ RELAIS_CLUSTER: "redis", REDIS_URL: redisUrl(), RELAIS_REDIS_PREFIX: prefix }),
    );
    const kv = storeKvOf(config, deno);
    try {
      assert.notEqual(kv, deno);
      await kv.set(["k"], "on redis");
      assert.equal((await deno.get(["k"])).value, null);
      const again = storeKvOf(config, deno);
      assert.equal((await again.get(["k"])).value, "on redis", "another node reads it");
      again.close();
    } finally {
      kv.close();
    }
  },
});
