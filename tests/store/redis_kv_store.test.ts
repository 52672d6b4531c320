/**
 * The whole store contract on the Deno KV adapter over the Redis KV: the same adapter
 * code as `kv_store.test.ts`, on Redis instead of Deno KV.
 */

import { createKvStore } from "../../src/store/kv_store.ts";
import * as keys from "../../src/store/keys.ts";
import { FANOUT_BATCH } from "../../src/store/kv/fanout.ts";
import { ignoreRedis, openRedisKv } from "../_support/redis_kv.ts";
import { storeContract } from "./_contract.ts";

// Without Redis (outside CI), the contract registers nothing: one line says it is skipped.
if (!ignoreRedis) {
  storeContract({
    name: "kv store on redis",
    atomicTargets: FANOUT_BATCH,
    open() {
      const kv = openRedisKv();
      return Promise.resolve({
        store: createKvStore(kv, { recentWindowMs: 60_000 }),
        async mailTasks() {
          const ids: string[] = [];
          for await (const t of kv.list({ prefix: keys.mailTaskPrefix() })) {
            ids.push(t.key[2] as string);
          }
          return ids;
        },
        close: () => kv.close(),
      });
    },
  });
}
