/** The contract of the delivery port: delivered marks, acks, pending acks, dead letters. */

import assert from "node:assert/strict";
import type { DeliveredEntry } from "../../../src/store/store.ts";
import { makeEnvelope, result } from "../../_support/store.ts";
import { type Contract, contractTest, publish, withMetadata } from "./_harness.ts";

const acked = () => makeEnvelope("NOTIFICATION", { ack: true });

/** Registers the delivery port's contract tests for one adapter. */
export function deliveryStoreContract(contract: Contract): void {
  const test = (behaviour: string, fn: Parameters<typeof contractTest>[2]) =>
    contractTest(contract, behaviour, fn);

  test("counts an ack once, however often it is repeated", async (store) => {
    const e = await publish(store, ["a", "b"], acked());
    assert.equal(await store.ack("a", e.metadata.id, Date.now()), true);
    assert.equal(await store.ack("a", e.metadata.id, Date.now()), true);
    assert.equal(await store.ack("nobody", e.metadata.id, Date.now()), false);
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.acked, 1);
    assert.equal(status.delivered, 1);
    assert.deepEqual(status.pending_users, ["b"]);
    assert.equal(status.acked_all, false);
    assert.deepEqual(await store.listPending("a"), []);
  });

  test("counts a delivery once when it is recorded twice", async (store) => {
    const e = await publish(store, ["a", "b", "c"], acked());
    const id = e.metadata.id;
    const now = Date.now();
    await store.markDelivered([{ id, user: "a" }, { id, user: "a" }, { id, user: "b" }], now);
    await store.markDelivered([{ id, user: "a" }], now);
    const status = (await store.getStatus(id))!;
    assert.equal(status.delivered, 2);
    assert.deepEqual(status.pending_users, ["a", "b", "c"], "delivered is not acked");
  });

  test("marks a delivery where its fan-out wrote it, unless its record changed since", async (store) => {
    const e = acked();
    const id = e.metadata.id;
    const targets = ["a", "b", "c"];
    await store.createEvent(e, targets, result(e, targets.length));
    // Where the fan-out wrote each record, as live delivery hands it to the recorder (an
    // adapter without versions marks by reading).
    const written = new Map<string, DeliveredEntry["written"]>();
    await store.runFanout(id, ({ items, version }) => {
      for (const { user, item } of items) {
        if (version) written.set(user, { seq: item.seq, version });
      }
    });
    const entry = (user: string): DeliveredEntry =>
      written.has(user) ? { id, user, written: written.get(user) } : { id, user };
    // a acks before its delivery is recorded: its record is no longer the one written.
    assert.equal(await store.ack("a", id, Date.now()), true);
    await store.markDelivered(targets.map(entry), Date.now());
    // b's record was marked: the version it was written with is stale now.
    await store.markDelivered([entry("b")], Date.now());
    const status = (await store.getStatus(id))!;
    assert.deepEqual([status.delivered, status.acked], [3, 1], "each target once");
    assert.deepEqual(status.pending_users, ["b", "c"], "a stays acked");
  });

  test("records more deliveries than one commit checks, each once", async (store) => {
    const targets = Array.from({ length: 250 }, (_, i) => `u${i}`);
    const e = await publish(store, targets, makeEnvelope("NOTIFICATION"));
    const id = e.metadata.id;
    const now = Date.now();
    await store.markDelivered(targets.flatMap((user) => [{ id, user }, { id, user }]), now);
    let status = await store.getStatus(id);
    assert.equal(status?.delivered, 250);
    assert.deepEqual(status?.pending_users, []);
    await store.markDelivered(targets.slice(0, 120).map((user) => ({ id, user })), now);
    status = await store.getStatus(id);
    assert.equal(status?.delivered, 250);
  });

  test("counts ephemeral deliveries without waiting on anyone, never past the targets", async (store) => {
    const targets = Array.from({ length: 250 }, (_, i) => `u${i}`);
    const e = await publish(store, targets, makeEnvelope("REALTIME"));
    const id = e.metadata.id;
    let status = await store.getStatus(id);
    assert.deepEqual([status?.delivered, status?.pending_users], [0, []], "nobody is waited on");
    const now = Date.now();
    await store.markDelivered(
      targets.flatMap((user) => [{ id, user, ephemeral: true }, { id, user, ephemeral: true }]),
      now,
    );
    status = await store.getStatus(id);
    assert.equal(status?.delivered, 250, "each user once per batch");
    // A replay delivers some again: counted, but the count never passes the targets.
    await store.markDelivered(
      targets.slice(0, 120).map((user) => ({ id, user, ephemeral: true })),
      now,
    );
    status = await store.getStatus(id);
    assert.equal(status?.delivered, 250);
    assert.deepEqual(status?.pending_users, []);
  });

  test("lists pending acks with their policy and keeps an ack over a stale save", async (store) => {
    const first = await publish(store, ["u"], acked());
    const second = await publish(store, ["u"], acked());
    const pending = await store.listPending("u");
    assert.deepEqual(pending.map((p) => [p.seq, p.id]), [
      [1, first.metadata.id],
      [2, second.metadata.id],
    ]);
    assert.deepEqual(
      { attempts: pending[0].attempts, limit: pending[0].limit, backoff: pending[0].backoff },
      { attempts: 0, limit: 3, backoff: "FIXED" },
    );
    assert.equal(await store.ack("u", first.metadata.id, Date.now()), true);
    // A redelivery saved after the ack does not bring the acked item back.
    await store.savePending("u", pending.map((p) => ({ ...p, attempts: 1, nextAt: 99 })));
    const saved = await store.listPending("u");
    assert.deepEqual(saved.map((p) => [p.seq, p.attempts, p.nextAt]), [[2, 1, 99]]);
    // What a caller does with a listed entry does not change the stored one.
    saved[0].attempts = 7;
    assert.equal((await store.listPending("u"))[0].attempts, 1);
    assert.deepEqual(await store.listPending("nobody"), []);
  });

  test("refuses an ack of an expired item, counting nothing", async (store) => {
    const expiration = new Date(Date.now() + 60_000).toISOString();
    const e = await publish(store, ["a", "b"], withMetadata({ expiration }, { ack: true }));
    const id = e.metadata.id;
    // An hour later the item is gone: never delivered, so never acked either.
    assert.equal(await store.ack("a", id, Date.now() + 3_600_000), false);
    const status = (await store.getStatus(id))!;
    assert.deepEqual([status.delivered, status.acked, status.acked_all], [0, 0, false]);
    assert.deepEqual(status.pending_users, ["a", "b"]);
    assert.equal((await store.listPending("a")).length, 1, "left for its dead letter");
    // Before it expires, the same ack counts.
    assert.equal(await store.ack("b", id, Date.now()), true);
    assert.equal((await store.getStatus(id))!.acked, 1);
  });

  test("takes an ack of an item that needs none without counting it", async (store) => {
    const e = await publish(store, ["a", "b"], makeEnvelope("NOTIFICATION"));
    const id = e.metadata.id;
    assert.equal(await store.ack("a", id, Date.now()), true);
    await store.markDelivered([{ id, user: "b" }], Date.now());
    assert.equal(await store.ack("b", id, Date.now()), true);
    const status = (await store.getStatus(id))!;
    assert.deepEqual([status.delivered, status.acked, status.acked_all], [1, 0, false]);
    assert.deepEqual(status.pending_users, ["a"], "not delivered yet");
  });

  test("moves unacknowledged items to the dead letters, newest first", async (store) => {
    const first = await publish(store, ["a", "b"], acked());
    const second = await publish(store, ["a"], acked());
    const pending = await store.listPending("a");
    await store.deadLetter(
      "a",
      pending.slice(0, 1).map((p) => ({ ...p, attempts: 3 })),
      "gone",
      10,
    );
    await store.deadLetter("a", pending.slice(1), "expired", 20);
    assert.deepEqual(await store.listPending("a"), []);
    const letters = await store.listDeadLetters({ limit: 10 });
    assert.deepEqual(letters, [
      { id: second.metadata.id, user: "a", seq: 2, attempts: 0, reason: "expired", at: 20 },
      { id: first.metadata.id, user: "a", seq: 1, attempts: 3, reason: "gone", at: 10 },
    ]);
    assert.deepEqual(await store.listDeadLetters({ limit: 1 }), letters.slice(0, 1));
    const status = (await store.getStatus(first.metadata.id))!;
    assert.equal(status.failed, 1);
    assert.equal(status.delivered, 1);
    assert.deepEqual(status.pending_users, ["b"]);
    // A failed target stays failed: a late ack does not count.
    assert.equal(await store.ack("a", first.metadata.id, 30), true);
    assert.equal((await store.getStatus(first.metadata.id))!.acked, 0);
  });
}
