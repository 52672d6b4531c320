/**
 * The whole store contract on the Deno KV adapter over the Redis KV: the same adapter
 * code as `kv_store.test.ts`, on Redis instead of Deno KV.
 */

import { FANOUT_BATCH } from "../../src/store/kv/fanout.ts";
import { ignoreRedis, openRedisKv } from "../_support/redis_kv.ts";
import { storeContract } from "./_contract.ts";
import { kvStoreHarness } from "./contract/_harness.ts";

// Without Redis (outside CI), the contract registers nothing: one line says it is skipped.
if (!ignoreRedis) {
  storeContract({
    name: "kv store on redis",
    atomicTargets: FANOUT_BATCH,
    open() {
      const kv = openRedisKv();
      return Promise.resolve(kvStoreHarness(kv));
    },
  });
}
