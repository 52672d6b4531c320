/** The contract of the erasure port. */

import assert from "node:assert/strict";
import { makeEnvelope, result } from "../../_support/store.ts";
import { type Contract, contractTest, publish, readAll, withMetadata } from "./_harness.ts";

/** Registers the erasure port's contract tests for one adapter. */
export function erasureStoreContract(contract: Contract): void {
  contractTest(contract, "erases a user's deliveries and nobody else's", async (store) => {
    const collapsing = withMetadata({ collapse_key: "k" }, { ack: true });
    await publish(store, ["gone", "kept"], collapsing);
    await publish(store, ["gone"], makeEnvelope("REALTIME"));
    const third = await publish(store, ["gone", "kept"]);
    assert.deepEqual(await store.eraseUser("gone"), { streamItems: 3, pendingAcks: 1 });
    const now = Date.now();
    assert.equal(await store.lastSeq("gone"), 3, "the last seq stays");
    assert.deepEqual((await readAll(store, "gone")).items, []);
    assert.deepEqual(await store.listPending("gone"), []);
    assert.equal(await store.unreadCount("gone", now), 0);
    assert.equal(await store.findItem("gone", third.metadata.id), undefined);
    assert.equal(await store.ack("gone", collapsing.metadata.id, now), false);
    const status = (await store.getStatus(collapsing.metadata.id))!;
    assert.deepEqual(status.pending_users, ["kept"], "the erased target is forgotten");
    // The other target keeps everything.
    assert.equal(await store.lastSeq("kept"), 2);
    assert.equal(await store.unreadCount("kept", now), 2);
    assert.equal((await store.listPending("kept")).length, 1);
    // A later item goes above the erased ones (a device may still hold their positions),
    // with no collapse key left to replace.
    const next = withMetadata({ collapse_key: "k" });
    const published = await store.publishAtomic(next, ["gone"], result(next, 1));
    assert.equal(published?.batch?.items[0].item.seq, 4);
    assert.equal(published?.batch?.items[0].replaces, undefined);
    assert.deepEqual(await store.eraseUser("nobody"), { streamItems: 0, pendingAcks: 0 });
  });
}
