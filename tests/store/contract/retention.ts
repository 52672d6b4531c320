/** The contract of the retention port: what goes, what stays, in bounded steps. */

import assert from "node:assert/strict";
import type { Envelope } from "../../../src/schemas/envelope.ts";
import type { RetentionKind, Store, Swept } from "../../../src/store/store.ts";
import { makeEnvelope, result } from "../../_support/store.ts";
import { type Contract, contractTest, readAll, withMetadata } from "./_harness.ts";

/** When the old events were accepted: long before the cut. */
const OLD = Date.parse("2020-01-01T00:00:00Z");
/** The cut: what was accepted before it goes. */
const CUT = Date.parse("2021-01-01T00:00:00Z");

/** Publishes `e` to `targets` as accepted at `at` (epoch ms), through the job path. */
async function publishAt(store: Store, targets: string[], e: Envelope, at: number) {
  const accepted = { ...result(e, targets.length), accepted_at: new Date(at).toISOString() };
  await store.createEvent(e, targets, accepted);
  await store.runFanout(e.metadata.id, () => {});
  return e;
}

/** Sweeps `kind` to the end with steps of `limit`, answering every step. */
async function sweepAll(store: Store, kind: RetentionKind, before: number, limit: number) {
  const steps: Swept[] = [];
  let cursor: string | undefined;
  do {
    const step = await store.sweep(kind, before, { limit, ...(cursor ? { cursor } : {}) });
    steps.push(step);
    cursor = step.cursor;
    assert.ok(steps.length < 1000, "the sweep ends");
  } while (steps.at(-1)!.more);
  return steps;
}

const total = (steps: Swept[]) => steps.reduce((sum, s) => sum + s.removed, 0);

/** Registers the retention port's contract tests for one adapter. */
export function retentionStoreContract(contract: Contract): void {
  const test = (behaviour: string, fn: Parameters<typeof contractTest>[2]) =>
    contractTest(contract, behaviour, fn);

  test("sweeps items accepted before the cut from every index, and keeps newer ones", async (store) => {
    const old = await publishAt(
      store,
      ["a", "b"],
      withMetadata({ collapse_key: "k" }, {
        ack: true,
      }),
      OLD,
    );
    const plain = await publishAt(store, ["b"], makeEnvelope(), OLD);
    // A newer item of the same key replaces a's old one and moves a's mark.
    const fresh = await publishAt(store, ["a"], withMetadata({ collapse_key: "k" }), Date.now());
    const now = Date.now();
    assert.equal(await store.unreadCount("b", now), 2);

    const steps = await sweepAll(store, "items", CUT, 100);
    assert.equal(total(steps), 3, "three old targets: a and b of the first, b of the second");

    for (const id of [old.metadata.id, plain.metadata.id]) {
      assert.equal(await store.getEvent(id), undefined);
      assert.equal(await store.getStatus(id), undefined);
      assert.equal(await store.findItem("b", id), undefined);
    }
    assert.equal(await store.findItem("a", old.metadata.id), undefined);
    assert.deepEqual((await readAll(store, "b")).items, []);
    assert.deepEqual((await readAll(store, "a")).items.map((i) => i.id), [fresh.metadata.id]);
    assert.equal(await store.unreadCount("b", now), 0);
    assert.equal(await store.unreadCount("a", now), 1);
    assert.deepEqual(await store.listPending("a"), []);
    assert.deepEqual(await store.listPending("b"), []);
    assert.equal(await store.ack("b", old.metadata.id, now), false);
    assert.equal(await store.markRead("b", plain.metadata.id, now), false);
    const inbox = await store.listInbox("a", { limit: 10, unreadOnly: false, now });
    assert.deepEqual(inbox.items.map((i) => i.id), [fresh.metadata.id]);
    assert.equal((await store.getStatus(fresh.metadata.id))?.targeted, 1, "newer ones stay");
    // Seqs are never reused; b's collapse mark went with its item, a's names the newer one.
    assert.equal(await store.lastSeq("b"), 2);
    const next = withMetadata({ collapse_key: "k" });
    const forB = await store.publishAtomic(next, ["b"], result(next, 1));
    assert.equal(forB?.batch?.items[0].item.seq, 3);
    assert.equal(forB?.batch?.items[0].replaces, undefined);
    const again = withMetadata({ collapse_key: "k" });
    const forA = await store.publishAtomic(again, ["a"], result(again, 1));
    assert.equal(forA?.batch?.items[0].replaces?.id, fresh.metadata.id);
  });

  test("sweeps in bounded steps that report more until the end", async (store) => {
    for (let i = 0; i < 5; i++) await publishAt(store, ["u"], makeEnvelope(), OLD);
    const users = Array.from({ length: 100 }, (_, i) => `w${i}`);
    const wide = await publishAt(store, users, makeEnvelope(), OLD);
    const kept = await publishAt(store, ["u"], makeEnvelope(), Date.now());

    const steps = await sweepAll(store, "items", CUT, 30);
    assert.equal(total(steps), 105);
    assert.ok(steps.every((s) => s.removed <= 30), "no step removes more than its limit");
    assert.ok(steps.length >= 4, `105 items in steps of 30 take at least 4 (took ${steps.length})`);
    assert.ok(steps.slice(0, -1).every((s) => s.more), "every step but the last says more");
    assert.equal(steps.at(-1)!.more, false);
    assert.equal(await store.getStatus(wide.metadata.id), undefined);
    for (const user of ["w0", "w50", "w99"]) {
      assert.deepEqual((await readAll(store, user)).items, []);
    }
    assert.deepEqual((await readAll(store, "u")).items.map((i) => i.id), [kept.metadata.id]);
    const last = await sweepAll(store, "items", CUT, 30);
    assert.deepEqual(last, [{ removed: 0, more: false }], "nothing left to sweep");
  });

  test("sweeps ephemeral event records as events, and leaves durable ones to items", async (store) => {
    const realtime = await publishAt(store, ["u"], makeEnvelope("REALTIME"), OLD);
    const notification = await publishAt(store, ["u"], makeEnvelope(), OLD);
    const recent = await publishAt(store, ["u"], makeEnvelope("REALTIME"), Date.now());

    assert.equal(total(await sweepAll(store, "items", CUT, 10)), 1);
    assert.ok(await store.getStatus(realtime.metadata.id), "items leave ephemeral events");
    assert.equal(await store.getStatus(notification.metadata.id), undefined);

    const events = await sweepAll(store, "events", CUT, 10);
    assert.equal(total(events), 1);
    assert.equal(await store.getStatus(realtime.metadata.id), undefined);
    assert.ok(await store.getStatus(recent.metadata.id), "newer ones stay");
  });

  test("sweeps ephemeral events whose bodies take several chunks each", async (store) => {
    // A `within` of 1,000 long ids: a body of ~210,000 characters, stored in chunks.
    const within = Array.from({ length: 1000 }, (_, i) => `structure-${i}-`.padEnd(200, "x"));
    const old: string[] = [];
    for (let i = 0; i < 100; i++) {
      const e = makeEnvelope("REALTIME");
      e.routing.audience = { type: "ALL", targets: [], within: { STRUCTURE: within } };
      old.push((await publishAt(store, ["u"], e, OLD)).metadata.id);
    }
    const recent = await publishAt(store, ["u"], makeEnvelope("REALTIME"), Date.now());

    const steps = await sweepAll(store, "events", CUT, 200);
    assert.equal(total(steps), 100);
    for (const id of [old[0], old[50], old[99]]) {
      assert.equal(await store.getStatus(id), undefined);
    }
    assert.ok(await store.getStatus(recent.metadata.id), "newer ones stay");
  });

  test("leaves an event whose fan-out is unfinished for a later sweep", async (store) => {
    const e = makeEnvelope();
    const accepted = { ...result(e, 2), accepted_at: new Date(OLD).toISOString() };
    await store.createEvent(e, ["a", "b"], accepted);
    assert.equal(total(await sweepAll(store, "items", CUT, 10)), 0);
    assert.ok(await store.getEvent(e.metadata.id));
    await store.runFanout(e.metadata.id, () => {});
    assert.equal(total(await sweepAll(store, "items", CUT, 10)), 2);
    assert.equal(await store.getEvent(e.metadata.id), undefined);
    assert.deepEqual(await store.unfinishedFanouts(), []);
  });

  test("sweeps dead letters recorded before the cut", async (store) => {
    const e = await publishAt(store, ["u"], makeEnvelope("NOTIFICATION", { ack: true }), OLD);
    const f = await publishAt(
      store,
      ["u"],
      makeEnvelope("NOTIFICATION", { ack: true }),
      Date.now(),
    );
    const [first, second] = await store.listPending("u");
    await store.deadLetter("u", [first], "expired", CUT - 1000);
    await store.deadLetter("u", [second], "expired", CUT + 1000);
    assert.equal((await store.listDeadLetters({ limit: 10 })).length, 2);

    const steps = await sweepAll(store, "dead_letters", CUT, 1);
    assert.equal(total(steps), 1);
    assert.ok(steps.every((s) => s.removed <= 1));
    const left = await store.listDeadLetters({ limit: 10 });
    assert.deepEqual(left.map((d) => d.id), [f.metadata.id]);
    assert.equal(first.id, e.metadata.id);
  });

  test("refuses a sweep step without a positive limit", async (store) => {
    await assert.rejects(() => store.sweep("items", CUT, { limit: 0 }), RangeError);
    assert.deepEqual(await store.sweep("audit", CUT, { limit: 5 }), { removed: 0, more: false });
  });
}
