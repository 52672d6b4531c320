import assert from "node:assert/strict";
import { createKvStore } from "../../src/store/kv_store.ts";
import * as keys from "../../src/store/keys.ts";
import { FANOUT_BATCH, FANOUT_BATCH_MAX } from "../../src/store/kv/fanout.ts";
import type { DeliveredEntry, SeqSource } from "../../src/store/store.ts";
import { makeEnvelope, result, withStore } from "../_support/store.ts";
import { storeContract } from "./_contract.ts";
import { publish } from "./contract/_harness.ts";
import { countingKv } from "../_support/counting_kv.ts";
import { hookedGetMany, readingKv } from "../_support/reading_kv.ts";
import { kvStoreHarness } from "./contract/_harness.ts";

storeContract({
  name: "kv store",
  atomicTargets: FANOUT_BATCH,
  async open() {
    const kv = await Deno.openKv(":memory:");
    return kvStoreHarness(kv);
  },
});

// What follows depends on KV itself: its keys, its commit limits, its chunked bodies.

Deno.test("kv store reads a seq with no stored item as a gap, not a loss", async () => {
  await withStore(async (store, kv) => {
    for (let i = 0; i < 4; i++) await publish(store, ["u"]);
    // An ephemeral item kept in memory only, or a reserved seq never used.
    await kv.delete(keys.streamKey("u", 2));
    const read = await store.readStream("u", 0, { limit: 10, windowMs: 60_000, now: Date.now() });
    assert.deepEqual(read.items.map((i) => i.seq), [1, 3, 4]);
    assert.equal(read.complete, true);
    const tail = await store.readStream("u", 2, { limit: 10, windowMs: 60_000, now: Date.now() });
    assert.equal(tail.complete, true);
  });
});

Deno.test("kv store reads a 64 KiB body back from its chunks without its cache", async () => {
  await withStore(async (store, kv) => {
    const text = "a".repeat(29_999) + "é€😀".repeat(4000) + "a".repeat(10_000);
    const e = makeEnvelope("NOTIFICATION", { payload: { text } });
    await publish(store, ["u"], e);
    // A second store on the same KV has no cache: the body is read back from its chunks.
    const fresh = createKvStore(kv, { recentWindowMs: 60_000 });
    const envelope = await fresh.getEnvelope(e.metadata.id);
    assert.equal((envelope!.payload as { text: string }).text, text);
    assert.ok((await fresh.getEvent(e.metadata.id))!.chunks > 1);
  });
});

Deno.test("kv store keeps a small body in its event's record, read back without its cache", async () => {
  await withStore(async (store, kv) => {
    const bodies = async (id: string) =>
      (await Array.fromAsync(kv.list({ prefix: keys.eventBodyKey(id, 0).slice(0, 2) }))).length;
    const ephemeral = makeEnvelope("REALTIME", { payload: { text: "Bonjour 😀" } });
    await store.createEvent(ephemeral, [], result(ephemeral, 0));
    const durable = makeEnvelope("NOTIFICATION", { payload: { text: "Évaluation" } });
    await publish(store, ["u"], durable);
    const fresh = createKvStore(kv, { recentWindowMs: 60_000 });
    for (const e of [ephemeral, durable]) {
      assert.equal(await bodies(e.metadata.id), 0, "no key of its own");
      assert.equal((await fresh.getEvent(e.metadata.id))!.chunks, 0);
      assert.deepEqual(await fresh.getEnvelope(e.metadata.id), e);
    }
  });
});

Deno.test("kv store keeps a body out of its record when the two would not fit in one value", async () => {
  await withStore(async (store, kv) => {
    // A long list of unknown targets and a body just under the inline size, all in UTF-16.
    const e = makeEnvelope("REALTIME", { payload: { text: "é€".repeat(7_000) } });
    const published = {
      ...result(e, 0),
      unknown_targets: Array.from({ length: 100 }, (_, i) => `${i}-${"ü".repeat(190)}`),
    };
    const { created } = await store.createEvent(e, [], published);
    assert.equal(created, true);
    const fresh = createKvStore(kv, { recentWindowMs: 60_000 });
    assert.ok((await fresh.getEvent(e.metadata.id))!.chunks > 0);
    assert.deepEqual(await fresh.getEnvelope(e.metadata.id), e);
  });
});

Deno.test("kv store writes no job key for a one-commit publish", async () => {
  await withStore(async (store, kv) => {
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    const published = await store.publishAtomic(e, ["a", "b"], result(e, 2));
    assert.equal(published?.created, true);
    assert.equal((await kv.get(keys.jobKey(e.metadata.id))).value, null);
  });
});

Deno.test("kv store writes a target record for durable items only, on both publish paths", async () => {
  await withStore(async (store, kv) => {
    const targetsOf = async (id: string) =>
      (await Array.fromAsync(kv.list({ prefix: keys.targetPrefix(id) }))).length;
    const users = Array.from({ length: 150 }, (_, i) => `u${i}`);
    for (const [type, expected] of [["REALTIME", 0], ["NOTIFICATION", users.length]] as const) {
      const small = makeEnvelope(type);
      await store.publishAtomic(small, users.slice(0, 3), result(small, 3));
      assert.equal(await targetsOf(small.metadata.id), Math.min(expected, 3), `${type} one-commit`);
      const large = makeEnvelope(type);
      const { event } = await store.createEvent(large, users, result(large, users.length));
      await store.runFanout(event.id, () => {});
      assert.equal(await targetsOf(large.metadata.id), expected, `${type} job`);
    }
  });
});

Deno.test("kv store leaves audiences too large for one commit to the job path", async () => {
  await withStore(async (store, kv) => {
    const e = makeEnvelope("REALTIME");
    const users = Array.from({ length: 91 }, (_, i) => `u${i}`);
    assert.equal(await store.publishAtomic(e, users, result(e, 91)), undefined);
    const long = Array.from({ length: 60 }, (_, i) => `${"y".repeat(190)}${i}`);
    assert.equal(await store.publishAtomic(e, long, result(e, 60)), undefined);
    const planned = await store.publishAtomic(e, users.slice(0, 41), result(e, 41), {
      plan: (targets) => Promise.resolve(targets.map(() => ({ quiet: false }))),
    });
    assert.equal(planned, undefined);
    assert.equal(await store.publishAtomic(e, [], result(e, 0)), undefined);
    assert.equal((await kv.get(keys.eventKey(e.metadata.id))).value, null);
    assert.equal(await store.lastSeq("u0"), 0);
    const fits = await store.publishAtomic(e, users.slice(0, 90), result(e, 90));
    assert.equal(fits?.batch?.items.length, 90);
  });
});

Deno.test("kv store commits the widest one-commit publish its budget lets through", async () => {
  await withStore(async (store) => {
    // 40 users with long ids, each getting an ack, a mail task and a collapse
    // replacement: the most keys per target the one-commit path writes.
    const users = Array.from({ length: 40 }, (_, i) => `${"u".repeat(70)}${1000 + i}`);
    const plan = (targets: string[]) =>
      Promise.resolve(targets.map(() => ({ quiet: false, mailAt: 5 })));
    for (let round = 0; round < 2; round++) {
      const base = makeEnvelope("NOTIFICATION", {
        ack: true,
        payload: { text: "é".repeat(60_000) },
      });
      const e = { ...base, metadata: { ...base.metadata, collapse_key: "c".repeat(20) } };
      const published = await store.publishAtomic(e, users, result(e, 40), { plan });
      assert.equal(published?.created, true);
      assert.equal(published.batch?.items.filter((i) => i.replaces).length, round ? 40 : 0);
    }
  });
});

/** A KV handle that counts commits (and failed ones) and can run a hook before each. */
const instrumented = (kv: Deno.Kv, beforeCommit?: () => Promise<unknown>) =>
  countingKv(kv, beforeCommit && (() => beforeCommit()));

Deno.test("kv store groups concurrent one-commit publishes into fewer commits", async () => {
  await withStore(async (_, raw) => {
    const { kv, counts } = instrumented(raw);
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const events = Array.from({ length: 20 }, () => makeEnvelope("NOTIFICATION", { ack: true }));
    const published = await Promise.all(
      events.map((e, i) => store.publishAtomic(e, [`u${i}`, `v${i}`], result(e, 2))),
    );
    assert.ok(published.every((p) => p?.created));
    assert.ok(counts.commits < 20, `${counts.commits} commits`);
    for (let i = 0; i < 20; i++) {
      assert.equal((await store.findItem(`u${i}`, events[i].metadata.id))?.seq, 1);
      assert.equal((await store.findItem(`v${i}`, events[i].metadata.id))?.seq, 1);
      assert.equal((await store.listPending(`v${i}`)).length, 1);
    }
  });
});

Deno.test("kv store commits the rest of a group when one member's seq went stale", async () => {
  await withStore(async (_, raw) => {
    // Once the publishes have read their seqs, another writer moves u3's.
    let raced = false;
    const { kv, counts } = instrumented(raw, async () => {
      if (raced) return;
      raced = true;
      await raw.set(keys.seqKey("u3"), 7);
    });
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const events = Array.from({ length: 6 }, () => makeEnvelope());
    const published = await Promise.all(
      events.map((e, i) => store.publishAtomic(e, [`u${i}`], result(e, 1))),
    );
    assert.ok(published.every((p) => p?.created));
    assert.equal(await store.lastSeq("u3"), 8);
    assert.equal((await store.findItem("u3", events[3].metadata.id))?.seq, 8);
    for (const i of [0, 1, 2, 4, 5]) assert.equal(await store.lastSeq(`u${i}`), 1);
    assert.ok(counts.failed >= 1, "no commit saw the stale seq");
  });
});

/** A seq source with a head for each of `heads`, from seq 1, recording takes and drops. */
function fixedHeads(...heads: string[]) {
  const next = new Map(heads.map((user) => [user, 1]));
  const taken: string[] = [];
  const dropped: string[] = [];
  const source: SeqSource = {
    take(user) {
      const seq = next.get(user);
      if (seq === undefined) return undefined;
      next.set(user, seq + 1);
      taken.push(`${user}@${seq}`);
      return seq;
    },
    drop: (user, seq) => void dropped.push(`${user}@${seq}`),
  };
  return { source, taken, dropped };
}

Deno.test("kv store writes at a head's seq without reading or checking the stored seq", async () => {
  await withStore(async (_, raw) => {
    // Between the publish's reads and its commit, another process allocates above h's range.
    let raced = true;
    const { kv, counts } = instrumented(raw, async () => {
      if (raced) return;
      raced = true;
      await raw.set(keys.seqKey("h"), 100);
    });
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    await store.reserveSeqs("h", 10);
    raced = false;
    counts.failed = 0;
    const heads = fixedHeads("h");
    const e = makeEnvelope();
    const published = await store.publishAtomic(e, ["h"], result(e, 1), { seqs: heads.source });
    assert.equal(published?.batch?.items[0].item.seq, 1);
    assert.equal(counts.failed, 0, "the stored seq is not checked");
    assert.equal(await store.lastSeq("h"), 100, "nor moved");
    assert.equal((await store.findItem("h", e.metadata.id))?.seq, 1);
  });
});

Deno.test("kv store publishes to targets with heads without reading first; a second publish of the id finds the first", async () => {
  const raw = await Deno.openKv(":memory:");
  const { kv, reads } = readingKv(raw);
  try {
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const heads = fixedHeads("h", "k");
    const e = makeEnvelope("NOTIFICATION");
    reads.length = 0;
    const first = await store.publishAtomic(e, ["h", "k"], result(e, 2), { seqs: heads.source });
    assert.equal(first?.created, true);
    assert.equal(reads.join(", "), "", "nothing read before the commit");
    const again = await store.publishAtomic(e, ["h", "k"], result(e, 2), { seqs: heads.source });
    assert.equal(again?.created, false, "the failed commit sent it to read the first event");
    assert.equal(again?.event.id, e.metadata.id);
    assert.ok(reads.includes("event"));
    assert.deepEqual(heads.dropped, ["h@2", "k@2"], "the second publish's seqs are given back");
    assert.equal((await store.findItem("h", e.metadata.id))?.seq, 1, "stored once");
  } finally {
    raw.close();
  }
});

Deno.test("kv store retries a publish at the same head seqs when another user's seq moved", async () => {
  await withStore(async (_, raw) => {
    let raced = false;
    const { kv, counts } = instrumented(raw, async () => {
      if (raced) return;
      raced = true;
      await raw.set(keys.seqKey("plain"), 7);
    });
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const heads = fixedHeads("h");
    const e = makeEnvelope();
    const published = await store.publishAtomic(e, ["h", "plain"], result(e, 2), {
      seqs: heads.source,
    });
    assert.ok(counts.failed >= 1, "no commit saw the stale seq");
    assert.deepEqual(published?.batch?.items.map((i) => i.item.seq), [1, 8]);
    assert.deepEqual(heads.taken, ["h@1"], "taken once, reused by the retry");
    assert.deepEqual(heads.dropped, []);
  });
});

Deno.test("kv store checks the collapse mark of a target whose seq comes from a head", async () => {
  await withStore(async (_, raw) => {
    let raced = false;
    const { kv, counts } = instrumented(raw, async () => {
      if (raced) return;
      raced = true;
      await raw.set(keys.collapseKey("h", "k"), { seq: 0, id: "other" });
    });
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const heads = fixedHeads("h");
    const base = makeEnvelope();
    const e = { ...base, metadata: { ...base.metadata, collapse_key: "k" } };
    const published = await store.publishAtomic(e, ["h"], result(e, 1), { seqs: heads.source });
    assert.ok(counts.failed >= 1, "the moved mark failed the commit");
    assert.equal(published?.batch?.items[0].item.seq, 1);
    assert.deepEqual((await raw.get(keys.collapseKey("h", "k"))).value, {
      seq: 1,
      id: e.metadata.id,
    });
    assert.deepEqual(heads.taken, ["h@1"]);
  });
});

Deno.test("kv store gives back the head seqs of a fan-out that gives up", async () => {
  await withStore(async (_, raw) => {
    // Every commit of the job fails: the run gives up, and gives back every seq it took.
    const { kv } = instrumented(raw, async () => {
      await raw.set(keys.seqKey("plain"), Math.random());
    });
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const heads = fixedHeads("h1", "h2");
    const e = makeEnvelope();
    await store.createEvent(e, ["h1", "plain", "h2"], result(e, 3));
    await assert.rejects(
      store.runFanout(e.metadata.id, () => {}, { seqs: heads.source }),
      /keeps conflicting/,
    );
    assert.deepEqual(heads.taken, ["h1@1", "h2@1"], "taken once for every retry");
    assert.deepEqual(heads.dropped.sort(), ["h1@1", "h2@1"]);
  });
});

/**
 * A user who connects during a write: no head at the write's first take, which starts
 * opening one; the store's read of the stored seq waits (through `kv`) until the head's
 * range is reserved, as when the reservation's commit lands first.
 */
function headOpeningDuringTake(raw: Deno.Kv) {
  let opening: Promise<{ from: number; to: number }> | undefined;
  let next = 0;
  const kv = hookedGetMany(raw, async (list, read) => {
    if (list.some((k) => k[0] === "seq")) await opening?.catch(() => {});
    return await read();
  });
  const store = createKvStore(kv, { recentWindowMs: 60_000 });
  const source: SeqSource = {
    take(user) {
      if (!opening) {
        opening = store.reserveSeqs(user, 10).then((range) => {
          next = range!.from;
          return range!;
        });
        return undefined;
      }
      return opening.then(() => next++);
    },
    drop: () => {},
  };
  return { store, source, range: () => opening! };
}

for (const path of ["one-commit publish", "fan-out job"] as const) {
  Deno.test(`kv store ${path}: a head opening during the write gets the item inside its range`, async () => {
    await withStore(async (_, raw) => {
      const { store, source, range } = headOpeningDuringTake(raw);
      const e = makeEnvelope();
      const items: { seq: number }[] = [];
      if (path === "one-commit publish") {
        const published = await store.publishAtomic(e, ["u"], result(e, 1), { seqs: source });
        items.push(...published!.batch!.items.map((i) => i.item));
      } else {
        await store.createEvent(e, ["u"], result(e, 1));
        await store.runFanout(e.metadata.id, (b) => items.push(...b.items.map((i) => i.item)), {
          seqs: source,
        });
      }
      const { from, to } = await range();
      assert.deepEqual(items.map((i) => i.seq), [from], "at the head's first seq");
      assert.equal(await store.lastSeq("u"), to, "nothing allocated above the head's range");
    });
  });
}

Deno.test("kv store groups concurrent record-only events into fewer commits, each stored when it answers", async () => {
  await withStore(async (_, raw) => {
    const { kv, counts } = instrumented(raw);
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const events = Array.from({ length: 30 }, () => makeEnvelope("REALTIME"));
    const created = await Promise.all(events.map(async (e) => {
      const answer = await store.createEvent(e, [], result(e, 0));
      // Durable by the time it answers: another handle on the same KV reads it.
      const stored = await raw.get(keys.eventKey(e.metadata.id));
      return answer.created && stored.value !== null;
    }));
    assert.deepEqual(created, events.map(() => true));
    assert.ok(counts.commits < 30, `${counts.commits} commits for 30 events`);
    // A re-post of a known id creates nothing and answers the first record.
    const again = await store.createEvent(events[0], [], result(events[0], 0));
    assert.equal(again.created, false);
  });
});

Deno.test("kv store fan-out reads the stored seq of users without a head only, ahead or not", async () => {
  await withStore(async (_, raw) => {
    const { kv, reads } = readingKv(raw);
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    // Three batches at least; every other user has a head.
    const targets = Array.from({ length: 3 * FANOUT_BATCH_MAX }, (_, i) => `u${i}`);
    const headed = targets.filter((_, i) => i % 2 === 0);
    const heads = fixedHeads(...headed);
    const e = makeEnvelope("NOTIFICATION");
    await store.createEvent(e, targets, result(e, targets.length));
    reads.length = 0;
    const items: { user: string; seq: number }[] = [];
    let batches = 0;
    await store.runFanout(e.metadata.id, (batch) => {
      batches++;
      for (const { user, item } of batch.items) items.push({ user, seq: item.seq });
    }, { seqs: heads.source });
    assert.ok(batches >= 3, `${batches} batches`);
    assert.equal(items.length, targets.length);
    assert.ok(items.every((i) => i.seq === 1));
    assert.equal(reads.filter((r) => r === "seq").length, targets.length - headed.length);
    assert.deepEqual(heads.dropped, [], "every seq taken ahead is written");
  });
});

Deno.test("kv store marks deliveries where their fan-out wrote them, without reading them", async () => {
  await withStore(async (_, raw) => {
    const { kv, reads } = readingKv(raw);
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    const targets = Array.from({ length: 200 }, (_, i) => `u${i}`);
    const e = makeEnvelope("NOTIFICATION");
    const id = e.metadata.id;
    await store.createEvent(e, targets, result(e, targets.length));
    const delivered: DeliveredEntry[] = [];
    await store.runFanout(id, ({ items, version }) => {
      assert.ok(version, "each batch tells its commit's version");
      for (const { user, item } of items) {
        delivered.push({ id, user, written: { seq: item.seq, version } });
      }
    });
    reads.length = 0;
    await store.markDelivered(delivered, Date.now());
    assert.deepEqual(reads.filter((r) => r === "event_target"), []);
    const status = await store.getStatus(id);
    assert.equal(status?.delivered, 200);
    assert.deepEqual(status?.pending_users, []);
  });
});
