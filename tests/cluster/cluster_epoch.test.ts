/** The cluster's epoch: settled once in the store, and waited for while the store is away. */

import assert from "node:assert/strict";
import { createClusterEpoch } from "../../src/cluster/cluster_epoch.ts";
import { AppError, storeUnavailable } from "../../src/errors.ts";

/**
 * A real Deno KV whose reads fail `refusals` times first with `error` (a store that does
 * not answer yet), counting the reads.
 */
function flakyKv(kv: Deno.Kv, refusals: number, error: () => Error = storeUnavailable) {
  let reads = 0;
  const flaky = {
    get<T>(key: Deno.KvKey) {
      reads++;
      if (reads <= refusals) return Promise.reject(error());
      return kv.get<T>(key);
    },
    atomic: () => kv.atomic(),
  };
  return { kv: flaky as unknown as Deno.Kv, reads: () => reads };
}

Deno.test("the epoch is settled once and read back by every node", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const first = createClusterEpoch(kv);
    assert.throws(() => first.current(), /not loaded/);
    const epoch = await first.load();
    assert.equal(first.current(), epoch);
    assert.equal(await createClusterEpoch(kv).load(), epoch, "another node finds the same");
  } finally {
    kv.close();
  }
});

Deno.test("a node starting waits for a store that does not answer yet", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const flaky = flakyKv(kv, 3);
    const waits: AppError[] = [];
    const epoch = createClusterEpoch(flaky.kv, {
      waitMs: 5_000,
      pauseMs: 10,
      onWait: (error) => waits.push(error),
    });
    const loaded = await epoch.load();
    assert.equal(waits.length, 3);
    assert.ok(waits.every((e) => e.code === "store_unavailable"));
    assert.equal(flaky.reads(), 4);
    assert.equal(epoch.current(), loaded);
  } finally {
    kv.close();
  }
});

Deno.test("a store still away when the wait ends, or any other failure, ends the start", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const away = flakyKv(kv, Infinity);
    const started = Date.now();
    await assert.rejects(
      createClusterEpoch(away.kv, { waitMs: 200, pauseMs: 20 }).load(),
      (e) => e instanceof AppError && e.code === "store_unavailable",
    );
    assert.ok(Date.now() - started < 2_000, "the wait is bounded");
    assert.ok(away.reads() > 1, "the store was asked again while waiting");

    const broken = flakyKv(kv, 1, () => new Error("a bug, not an outage"));
    await assert.rejects(
      createClusterEpoch(broken.kv, { waitMs: 5_000, pauseMs: 10 }).load(),
      /a bug, not an outage/,
    );
    assert.equal(broken.reads(), 1, "only an unavailable store is waited for");
  } finally {
    kv.close();
  }
});
