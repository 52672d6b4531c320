/** The contract of the event port: records, one-commit publishes and fan-out jobs. */

import assert from "node:assert/strict";
import type { FanoutBatch } from "../../../src/store/store.ts";
import { makeEnvelope, result } from "../../_support/store.ts";
import { type Contract, contractTest, publish, readAll, withMetadata } from "./_harness.ts";

const users = (n: number, prefix = "u") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

const collapsing = () => withMetadata({ collapse_key: "activity:42" });

/** Registers the event port's contract tests for one adapter. */
export function eventStoreContract(contract: Contract): void {
  const test = (behaviour: string, fn: Parameters<typeof contractTest>[2]) =>
    contractTest(contract, behaviour, fn);

  test("resumes an interrupted fan-out without duplicates or losses", async (store) => {
    const targets = users(2500, "user-");
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    await store.createEvent(e, targets, result(e, targets.length));
    let batches = 0;
    await assert.rejects(
      store.runFanout(e.metadata.id, () => {
        if (++batches === 3) throw new Error("crash");
      }),
      /crash/,
    );
    assert.deepEqual(await store.unfinishedFanouts(), [e.metadata.id]);
    assert.equal((await store.getStatus(e.metadata.id))!.fan_out, "running");
    await store.runFanout(e.metadata.id, () => {});
    assert.deepEqual(await store.unfinishedFanouts(), []);
    for (const user of [targets[0], targets[500], targets[1000], targets[2499]]) {
      assert.equal(await store.lastSeq(user), 1, user);
      assert.equal((await store.listPending(user)).length, 1);
    }
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.fan_out, "done");
    assert.equal(status.targeted, 2500);
  });

  test("round-trips a 64 KiB payload of multi-byte text", async (store) => {
    const text = "a".repeat(29_999) + "é€😀".repeat(4000) + "a".repeat(10_000);
    const e = makeEnvelope("NOTIFICATION", { payload: { text } });
    await publish(store, ["u"], e);
    const envelope = await store.getEnvelope(e.metadata.id);
    assert.equal((envelope!.payload as { text: string }).text, text);
    const page = await store.listInbox("u", { limit: 1, unreadOnly: false, now: Date.now() });
    assert.equal((page.items[0].envelope.payload as { text: string }).text, text);
  });

  test("publishes a small audience in one commit without a fan-out job", async (store) => {
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    await publish(store, ["a"]);
    const published = await store.publishAtomic(e, ["a", "b"], result(e, 2));
    assert.ok(published);
    assert.equal(published.created, true);
    assert.equal(published.event.fanningOut, false);
    assert.deepEqual(published.batch?.items.map((i) => [i.user, i.item.seq]), [["a", 2], ["b", 1]]);
    assert.equal(published.batch?.items[0].pending?.seq, 2);
    assert.deepEqual(await store.unfinishedFanouts(), []);
    assert.deepEqual(await store.getEnvelope(e.metadata.id), e);
    assert.equal((await store.listPending("b")).length, 1);
    assert.equal(await store.unreadCount("a", Date.now()), 2);
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.fan_out, "done");
    assert.equal(status.targeted, 2);
    assert.deepEqual(status.pending_users.sort(), ["a", "b"]);
  });

  test("returns the first event when a one-commit publish is repeated", async (store) => {
    const e = makeEnvelope();
    const first = await store.publishAtomic(e, ["a"], result(e, 1));
    const again = await store.publishAtomic(e, ["a", "b"], result(e, 2));
    assert.equal(again?.created, false);
    assert.equal(again?.batch, undefined);
    assert.deepEqual(again?.event.result, first?.event.result);
    assert.equal(await store.lastSeq("a"), 1);
    assert.equal(await store.lastSeq("b"), 0);
    // The job path sees the same event, and the one-commit path sees a job path event.
    assert.equal((await store.createEvent(e, ["a"], result(e, 1))).created, false);
    const other = makeEnvelope();
    await store.createEvent(other, ["a"], result(other, 1));
    const replay = await store.publishAtomic(other, ["a"], result(other, 1));
    assert.equal(replay?.created, false);
    assert.equal(replay?.event.fanningOut, true);
  });

  test("leaves empty and too large audiences to the job path", async (store) => {
    const e = makeEnvelope("REALTIME");
    const many = users(contract.atomicTargets + 1);
    assert.equal(await store.publishAtomic(e, many, result(e, many.length)), undefined);
    assert.equal(await store.publishAtomic(e, [], result(e, 0)), undefined);
    assert.equal(await store.getEvent(e.metadata.id), undefined);
    assert.equal(await store.getEnvelope(e.metadata.id), undefined);
    assert.equal(await store.lastSeq("u0"), 0);
    const fits = await store.publishAtomic(e, many.slice(1), result(e, many.length - 1));
    assert.equal(fits?.batch?.items.length, contract.atomicTargets);
  });

  test("collapses and plans mail in a one-commit publish", async (store, harness) => {
    const plan = (targets: string[]) =>
      Promise.resolve(
        targets.map((u) => u === "quiet" ? { quiet: true } : { quiet: false, mailAt: 5 }),
      );
    const first = collapsing();
    await store.publishAtomic(first, ["a", "quiet"], result(first, 2), { plan });
    const second = collapsing();
    const published = await store.publishAtomic(second, ["a", "quiet"], result(second, 2), {
      plan,
    });
    const [a, quiet] = published!.batch!.items;
    assert.deepEqual(a.replaces, { id: first.metadata.id, seq: 1 });
    assert.equal(quiet.item.quiet, true);
    assert.equal(quiet.replaces, undefined);
    assert.equal((await store.findItem("a", first.metadata.id))?.replacedBy, second.metadata.id);
    assert.equal(await store.unreadCount("a", Date.now()), 1);
    assert.equal(await store.unreadCount("quiet", Date.now()), 0);
    assert.deepEqual(
      (await harness.mailTasks()).sort(),
      [`${first.metadata.id}:a`, `${second.metadata.id}:a`].sort(),
    );
    const status = (await store.getStatus(second.metadata.id))!;
    assert.deepEqual(status.pending_users, ["a"]);
    // A replaced item is neither replayed nor listed; the newer one is.
    const read = await readAll(store, "a");
    assert.deepEqual(read.items.map((i) => i.id), [second.metadata.id]);
    assert.equal(read.complete, true);
  });

  test("collapses in a fan-out job, and never replaces an item already read", async (store) => {
    const first = collapsing();
    await publish(store, ["a", "b"], first);
    await store.markRead("b", first.metadata.id, Date.now());
    const second = collapsing();
    await store.createEvent(second, ["a", "b"], result(second, 2));
    const batches: FanoutBatch[] = [];
    await store.runFanout(second.metadata.id, (batch) => void batches.push(batch));
    const items = batches.flatMap((b) => b.items);
    assert.deepEqual(items.find((i) => i.user === "a")?.replaces, {
      id: first.metadata.id,
      seq: 1,
    });
    assert.equal(items.find((i) => i.user === "b")?.replaces, undefined);
    assert.equal((await store.findItem("b", first.metadata.id))?.replacedBy, undefined);
    assert.equal(await store.unreadCount("a", Date.now()), 1);
    assert.equal(await store.unreadCount("b", Date.now()), 1);
  });

  test("drops the pending ack of the item a newer one replaces, on both publish paths", async (store) => {
    const acked = () => withMetadata({ collapse_key: "activity:42" }, { ack: true });
    const first = acked();
    await publish(store, ["a"], first);
    // The job path replaces the first; the one-commit path then replaces the second.
    const second = acked();
    await publish(store, ["a"], second);
    assert.deepEqual((await store.listPending("a")).map((p) => p.id), [second.metadata.id]);
    const third = acked();
    const published = await store.publishAtomic(third, ["a"], result(third, 1));
    assert.deepEqual(published?.batch?.items[0].replaces, { id: second.metadata.id, seq: 2 });
    assert.deepEqual((await store.listPending("a")).map((p) => p.id), [third.metadata.id]);
    // The newer item's ack works as before.
    assert.equal(await store.ack("a", third.metadata.id, Date.now()), true);
    assert.deepEqual(await store.listPending("a"), []);
    // The replaced events were neither acked nor failed: superseded, they stay as they were.
    const status = (await store.getStatus(first.metadata.id))!;
    assert.equal(status.acked, 0);
    assert.equal(status.failed, 0);
    assert.equal((await store.getStatus(third.metadata.id))!.acked_all, true);
  });

  test("writes the targets assigned a seq at creation at exactly that seq", async (store) => {
    const targets = users(300);
    // u3 and u250 took seqs from their heads (ranges reserved in the store) before the
    // event was created; the others have none.
    const three = (await store.reserveSeqs("u3", 10))!;
    const far = (await store.reserveSeqs("u250", 10))!;
    const assigned = new Map([["u3", three.from + 4], ["u250", far.from]]);
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    await store.createEvent(e, targets, result(e, targets.length), { assigned });
    const plain = makeEnvelope("NOTIFICATION");
    await store.createEvent(plain, targets, result(plain, targets.length));
    assert.deepEqual(
      (await store.unfinishedFanouts()).toSorted(),
      [e, plain].map((x) => x.metadata.id).toSorted(),
    );
    assert.deepEqual(await store.unfinishedFanouts({ assigned: true }), [e.metadata.id]);
    const asked: string[] = [];
    const items: FanoutBatch["items"] = [];
    await store.runFanout(e.metadata.id, (batch) => void items.push(...batch.items), {
      seqs: {
        take: (user) => void asked.push(user),
        drop: () => {},
      },
    });
    assert.equal(items.length, 300);
    assert.equal(asked.includes("u3") || asked.includes("u250"), false, "no seq taken again");
    for (const [user, seq] of assigned) {
      assert.equal(items.find((i) => i.user === user)?.item.seq, seq);
      assert.deepEqual((await readAll(store, user)).items.map((i) => i.seq), [seq]);
      assert.deepEqual((await store.listPending(user)).map((p) => p.seq), [seq]);
      // The stored last seq is the reservation's: written at a head's seq, it is not moved.
      assert.equal(await store.lastSeq(user), user === "u3" ? three.to : far.to);
    }
    // The others got the next seq of their stored streams.
    assert.equal(items.find((i) => i.user === "u7")?.item.seq, 1);
    assert.equal((await store.getStatus(e.metadata.id))?.pending_users.length, 100);
    assert.deepEqual(await store.unfinishedFanouts(), [plain.metadata.id]);
    await store.runFanout(plain.metadata.id, () => {});
    assert.deepEqual(await store.unfinishedFanouts(), []);
  });

  test("writes a claimed delivery as delivered with its item, and asks only for items sent ahead", async (store) => {
    const targets = users(120);
    const assigned = new Map<string, number>();
    for (const user of ["u3", "u7", "u20"]) {
      assigned.set(user, (await store.reserveSeqs(user, 10))!.from);
    }
    const e = makeEnvelope("NOTIFICATION");
    await store.createEvent(e, targets, result(e, targets.length), { assigned });
    // u3 and u7 got it before it was written; u20's copy did not go out.
    const asked: string[] = [];
    const items: FanoutBatch["items"] = [];
    await store.runFanout(e.metadata.id, (batch) => void items.push(...batch.items), {
      claims: {
        claim(id, user) {
          assert.equal(id, e.metadata.id);
          asked.push(user);
          return user !== "u20";
        },
        release: (_id, user) => assert.fail(`a written batch gave back ${user}'s claim`),
      },
    });
    assert.deepEqual(asked.toSorted(), ["u20", "u3", "u7"], "only targets at assigned seqs");
    assert.deepEqual(
      items.filter((i) => i.delivered).map((i) => i.user).toSorted(),
      ["u3", "u7"],
    );
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.delivered, 2);
    assert.equal(status.pending_users.length, 100);
    for (const user of ["u3", "u7"]) assert.equal(status.pending_users.includes(user), false);
    assert.equal(status.pending_users.includes("u20"), true);
    // Marked again by a late copy (another connection), it is not counted twice.
    await store.markDelivered([{ id: e.metadata.id, user: "u3" }], Date.now());
    assert.equal((await store.getStatus(e.metadata.id))!.delivered, 2);
    await store.markDelivered([{ id: e.metadata.id, user: "u20" }], Date.now());
    assert.equal((await store.getStatus(e.metadata.id))!.delivered, 3);
  });

  test("two runners of one job: each claimed delivery is written with its item or given back", async (store) => {
    const targets = users(400);
    const assigned = new Map<string, number>();
    for (const user of targets.filter((_, i) => i % 3 === 0)) {
      assigned.set(user, (await store.reserveSeqs(user, 10))!.from);
    }
    const e = makeEnvelope("NOTIFICATION");
    await store.createEvent(e, targets, result(e, targets.length), { assigned });
    // Every assigned target's item went out; a delivery is claimed once, by either runner.
    const open = new Set(assigned.keys());
    const kept = new Set<string>();
    const givenBack: string[] = [];
    const claims = {
      claim(_id: string, user: string) {
        if (!open.delete(user)) return false;
        kept.add(user);
        return true;
      },
      release(_id: string, user: string) {
        assert.equal(kept.delete(user), true, `${user} given back without a claim`);
        givenBack.push(user);
      },
    };
    const written = new Map<string, number>();
    const onBatch = (batch: FanoutBatch) => {
      for (const i of batch.items) {
        assert.equal(written.has(i.user), false, `${i.user} written twice`);
        written.set(i.user, i.item.seq);
        if (i.delivered) assert.equal(kept.has(i.user), true, `${i.user} delivered unclaimed`);
      }
    };
    await Promise.all([
      store.runFanout(e.metadata.id, onBatch, { claims }),
      store.runFanout(e.metadata.id, onBatch, { claims }),
    ]);
    assert.equal(written.size, targets.length);
    for (const [user, seq] of assigned) assert.equal(written.get(user), seq, user);
    // What a runner claimed is either written as delivered or back with the recorder.
    assert.equal(kept.size + givenBack.length + open.size, assigned.size);
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.delivered, kept.size);
    assert.equal(status.fan_out, "done");
  });

  test("a run that stops before its batch is written gives its claims back", async (store) => {
    const targets = users(60);
    const assigned = new Map<string, number>();
    for (const user of targets) assigned.set(user, (await store.reserveSeqs(user, 10))!.from);
    const e = makeEnvelope("NOTIFICATION");
    await store.createEvent(e, targets, result(e, targets.length), { assigned });
    const claimed: string[] = [];
    const givenBack: string[] = [];
    const batches: FanoutBatch[] = [];
    await assert.rejects(
      store.runFanout(e.metadata.id, (batch) => void batches.push(batch), {
        claims: {
          claim(_id, user) {
            if (user === "u30") throw new Error("the recorder is gone");
            claimed.push(user);
            return true;
          },
          release: (_id, user) => void givenBack.push(user),
        },
      }),
      /the recorder is gone/,
    );
    // Claimed for the batch that never committed: every one is back.
    const written = new Set(batches.flatMap((b) => b.items.map((i) => i.user)));
    assert.ok(claimed.length > 0);
    assert.deepEqual(
      givenBack.toSorted(),
      claimed.filter((u) => !written.has(u)).toSorted(),
    );
    await store.runFanout(e.metadata.id, () => {});
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.fan_out, "done");
    assert.equal(status.delivered, claimed.length - givenBack.length);
  });

  test("plans each target of a fan-out job: quiet items and mail tasks", async (store, h) => {
    const e = makeEnvelope("NOTIFICATION");
    const targets = users(150);
    await store.createEvent(e, targets, result(e, targets.length));
    const planned: string[] = [];
    const items: FanoutBatch["items"] = [];
    await store.runFanout(e.metadata.id, (batch) => void items.push(...batch.items), {
      plan: (batch) => {
        planned.push(...batch);
        return Promise.resolve(
          batch.map((u) => u.endsWith("7") ? { quiet: true } : { quiet: false, mailAt: 9 }),
        );
      },
    });
    // Every target once, in the order the adapter writes them (Deno KV's: key order).
    assert.deepEqual(planned.toSorted(), targets.toSorted());
    assert.equal(items.length, 150);
    assert.ok(items.every((i) => (i.item.quiet === true) === i.user.endsWith("7")));
    // A quiet item keeps its place in the stream but is neither replayed nor unread.
    assert.equal(await store.lastSeq("u7"), 1);
    assert.deepEqual((await readAll(store, "u7")).items, []);
    assert.equal(await store.unreadCount("u7", Date.now()), 0);
    assert.equal(await store.unreadCount("u8", Date.now()), 1);
    const mailed = targets.filter((u) => !u.endsWith("7")).map((u) => `${e.metadata.id}:${u}`);
    assert.deepEqual((await h.mailTasks()).sort(), mailed.sort());
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.pending_users.includes("u7"), false, "a quiet target is not waited on");
  });

  test("shows an item that needs an ack whatever the plan says", async (store) => {
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    const published = await store.publishAtomic(e, ["a"], result(e, 1), {
      plan: (targets) => Promise.resolve(targets.map(() => ({ quiet: true }))),
    });
    assert.equal(published?.batch?.items[0].item.quiet, undefined);
    assert.equal(await store.unreadCount("a", Date.now()), 1);
  });

  test("records who published an event, on both publish paths", async (store) => {
    const atomic = makeEnvelope();
    await store.publishAtomic(atomic, ["a"], result(atomic, 1), { publishedBy: "service-a" });
    const job = makeEnvelope();
    await store.createEvent(job, ["a"], result(job, 1), { publishedBy: "service-b" });
    const legacy = makeEnvelope();
    await store.createEvent(legacy, ["a"], result(legacy, 1));
    assert.equal((await store.getEvent(atomic.metadata.id))?.publishedBy, "service-a");
    assert.equal((await store.getEvent(job.metadata.id))?.publishedBy, "service-b");
    assert.equal((await store.getEvent(legacy.metadata.id))?.publishedBy, undefined);
    await store.runFanout(job.metadata.id, () => {});
    assert.equal((await store.getEvent(job.metadata.id))?.publishedBy, "service-b");
    // A re-post of a known id answers the first record, with its publisher.
    const again = await store.publishAtomic(atomic, ["b"], result(atomic, 1), {
      publishedBy: "service-b",
    });
    assert.equal(again?.created, false);
    assert.equal(again?.event.publishedBy, "service-a");
  });

  test("fans an event out to its own targets when another publish of its id races it", async (store) => {
    const e = makeEnvelope("REALTIME");
    const mine = users(200, "mine-");
    const theirs = users(200, "theirs-");
    const [a, b] = await Promise.all([
      store.createEvent(e, mine, result(e, mine.length), { publishedBy: "service-a" }),
      store.createEvent(e, theirs, result(e, theirs.length), { publishedBy: "service-b" }),
    ]);
    assert.deepEqual([a.created, b.created].sort(), [false, true]);
    const winner = a.created ? mine : theirs;
    const loser = a.created ? theirs : mine;
    const written: string[] = [];
    await store.runFanout(e.metadata.id, (batch) => {
      for (const item of batch.items) written.push(item.user);
    });
    assert.deepEqual(written.sort(), [...winner].sort());
    for (const user of [loser[0], loser[199]]) assert.equal(await store.lastSeq(user), 0);
  });

  test("fans out to users with the longest ids", async (store) => {
    // 200-character user and event ids, the schema's maximum.
    for (const [type, ack] of [["REALTIME", false], ["NOTIFICATION", true]] as const) {
      const targets = Array.from({ length: 200 }, (_, i) => `${type}-${i}-`.padEnd(200, "x"));
      const e = makeEnvelope(type, { ack });
      e.metadata.id = type.padEnd(200, "-");
      await store.createEvent(e, targets, result(e, targets.length));
      const batches: FanoutBatch[] = [];
      await store.runFanout(e.metadata.id, (batch) => void batches.push(batch));
      assert.equal(batches.flatMap((b) => b.items).length, 200, type);
      for (const user of [targets[0], targets[199]]) assert.equal(await store.lastSeq(user), 1);
      assert.equal((await store.getStatus(e.metadata.id))!.fan_out, "done");
    }
  });

  test("fans out to long multi-byte user ids on both publish paths, every target", async (store) => {
    // 200-character ids of two- and three-byte characters: KV caps a commit's keys in bytes.
    const long = (prefix: string, n: number, char: string) =>
      Array.from({ length: n }, (_, i) => `${prefix}${i}`.padEnd(3, "-") + char.repeat(197));
    const mail = (targets: string[]) =>
      Promise.resolve(targets.map(() => ({ quiet: false, mailAt: 5 })));
    const cases = [
      { make: () => makeEnvelope("NOTIFICATION", { ack: true }), ids: long("a", 40, "語") },
      { make: () => makeEnvelope("SYSTEM"), ids: long("b", 90, "語") },
      { make: () => makeEnvelope("NOTIFICATION"), ids: long("c", 60, "é") },
      { make: () => makeEnvelope("MESSAGE"), ids: long("d", 40, "語") },
      { make: () => makeEnvelope("SYSTEM", { ack: true }), ids: long("f", 30, "語") },
      {
        make: () => withMetadata({ collapse_key: "鍵".repeat(200) }, { ack: true }),
        ids: long("e", 40, "語"),
      },
    ];
    let carol = 0;
    for (const [i, { make, ids }] of cases.entries()) {
      const targets = [...ids, "carol"];
      // As the publisher does (it plans NOTIFICATIONs): one commit when it fits, else the
      // job path; then the job path alone.
      const once = make();
      const plan = once.metadata.type === "NOTIFICATION" ? { plan: mail } : {};
      const atomic = await store.publishAtomic(once, targets, result(once, targets.length), plan);
      if (!atomic) await publish(store, targets, once);
      await publish(store, targets, make());
      carol += 2;
      for (const user of [ids[0], ids.at(-1)!]) assert.equal(await store.lastSeq(user), 2, `${i}`);
      assert.equal(await store.lastSeq("carol"), carol, `${i}`);
      assert.equal((await store.getStatus(once.metadata.id))!.fan_out, "done");
    }
    assert.deepEqual(await store.unfinishedFanouts(), []);
  });

  test("fans out to a large audience of long multi-byte user ids", async (store) => {
    // Its target list takes 1 MiB in UTF-16: more than one commit holds.
    const targets = Array.from(
      { length: 2600 },
      (_, i) => `${i}`.padEnd(4, "-") + "語".repeat(196),
    );
    const e = makeEnvelope("SYSTEM");
    await publish(store, targets, e);
    for (const user of [targets[0], targets[2599]]) assert.equal(await store.lastSeq(user), 1);
    assert.equal((await store.getStatus(e.metadata.id))!.fan_out, "done");
    assert.deepEqual(await store.unfinishedFanouts(), []);
  });

  test("answers the status of an event across its audience", async (store) => {
    assert.equal(await store.getStatus("missing"), undefined);
    assert.equal(await store.getEvent("missing"), undefined);
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    const unknown = { ...result(e, 2), unknown_targets: ["ghost"] };
    await store.publishAtomic(e, ["a", "b"], unknown, { publishedBy: "svc" });
    const id = e.metadata.id;
    await store.ack("a", id, Date.now());
    await store.ack("b", id, Date.now());
    const status = (await store.getStatus(id))!;
    assert.deepEqual(
      { ...status, accepted_at: "" },
      {
        id,
        type: "NOTIFICATION",
        accepted_at: "",
        ack_required: true,
        fan_out: "done",
        targeted: 2,
        delivered: 2,
        acked: 2,
        failed: 0,
        acked_all: true,
        pending_users: [],
        unknown_targets: ["ghost"],
        unknown_count: 1,
      },
    );
    assert.equal(status.accepted_at, unknown.accepted_at);
  });
}
