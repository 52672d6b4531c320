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
  erasureExportContract(contract);
}

/** Registers the export and dead-letter cases of the erasure port's contract. */
export function erasureExportContract(contract: Contract): void {
  contractTest(contract, "erases a user's dead letters and nobody else's", async (store) => {
    const e = withMetadata({}, { ack: true });
    await publish(store, ["gone", "kept"], e);
    const now = Date.now();
    for (const user of ["gone", "kept"]) {
      await store.deadLetter(user, await store.listPending(user), "gave up", now);
    }
    assert.deepEqual((await store.listDeadLetters({ limit: 10 })).map((d) => d.user).sort(), [
      "gone",
      "kept",
    ]);
    await store.eraseUser("gone");
    assert.deepEqual((await store.listDeadLetters({ limit: 10 })).map((d) => d.user), ["kept"]);
  });

  contractTest(
    contract,
    "exports every item of a user's stream with its delivery record, a page at a time",
    async (store) => {
      const acked = withMetadata({}, { ack: true });
      await publish(store, ["u", "other"], acked);
      const collapsing = withMetadata({ collapse_key: "k" });
      await publish(store, ["u"], collapsing);
      const replacing = withMetadata({ collapse_key: "k" });
      await publish(store, ["u"], replacing);
      await publish(store, ["other"]);
      assert.equal(await store.ack("u", acked.metadata.id, Date.now()), true);

      const first = await store.exportItems("u", { after: 0, limit: 2 });
      assert.deepEqual(first.map((e) => e.item.seq), [1, 2]);
      const rest = await store.exportItems("u", { after: first.at(-1)!.item.seq, limit: 2 });
      assert.deepEqual(rest.map((e) => e.item.seq), [3]);
      const all = [...first, ...rest];
      assert.deepEqual(all.map((e) => e.item.id), [
        acked.metadata.id,
        collapsing.metadata.id,
        replacing.metadata.id,
      ]);
      assert.equal(all[0].delivery?.state, "acked");
      assert.equal(all[0].item.ack, true);
      // A replaced item is hidden from resumes and the inbox, but it is still held.
      assert.equal(all[1].item.replacedBy, replacing.metadata.id);
      assert.deepEqual(await store.exportItems("u", { after: 3, limit: 10 }), []);
      assert.deepEqual(await store.exportItems("nobody", { after: 0, limit: 10 }), []);
      await store.eraseUser("u");
      assert.deepEqual(await store.exportItems("u", { after: 0, limit: 10 }), []);
    },
  );
}
