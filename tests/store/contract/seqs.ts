/**
 * The contract of seqs from memory: ranges reserved for stream heads, writes at a head's
 * seqs on both publish paths, and every seq taken either written or given back.
 */

import assert from "node:assert/strict";
import type { FanoutBatch, SeqRange, SeqSource, Store } from "../../../src/store/store.ts";
import { makeEnvelope, result } from "../../_support/store.ts";
import { type Contract, contractTest, publish, readAll, withMetadata } from "./_harness.ts";

const users = (n: number, prefix = "u") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/**
 * A small stream head per user, as a process keeps them: a range from `reserveSeqs`,
 * handed out in order and extended (a promise) once used up. It records every seq it
 * hands out and every seq given back.
 */
function createHeads(store: Store, size: number) {
  const heads = new Map<string, { next: number; to: number; queue: Promise<unknown> }>();
  const taken: string[] = [];
  const dropped: string[] = [];
  const handed = (user: string, seq: number) => {
    taken.push(`${user}@${seq}`);
    return seq;
  };
  const source: SeqSource = {
    take(user) {
      const head = heads.get(user);
      if (!head) return undefined;
      if (head.next <= head.to) return handed(user, head.next++);
      // Used up: later takes wait behind the extension, in the order they were asked.
      const seq = head.queue.then(async () => {
        if (head.next > head.to) {
          const range = await store.reserveSeqs(user, size, head.to);
          if (!range) throw new Error(`Cannot extend the head of "${user}"`);
          head.to = range.to;
        }
        return handed(user, head.next++);
      });
      head.queue = seq.catch(() => {});
      return seq;
    },
    drop(user, seq) {
      dropped.push(`${user}@${seq}`);
    },
  };
  return {
    source,
    taken,
    dropped,
    /** Opens a head for each user, on a fresh reservation. */
    async open(...list: string[]) {
      for (const user of list) {
        const range = (await store.reserveSeqs(user, size))!;
        heads.set(user, { next: range.from, to: range.to, queue: Promise.resolve() });
      }
    },
    /** The end of the user's reservation. */
    end: (user: string) => heads.get(user)!.to,
  };
}

/** Asserts that every seq the heads handed out is in exactly one batch, or given back. */
function assertAccounted(heads: ReturnType<typeof createHeads>, batches: FanoutBatch[]) {
  const written = batches.flatMap((b) => b.items.map((i) => `${i.user}@${i.item.seq}`));
  const headWritten = written.filter((w) => heads.taken.includes(w));
  assert.equal(new Set(headWritten).size, headWritten.length, "a seq written twice");
  assert.equal(new Set(heads.dropped).size, heads.dropped.length, "a seq given back twice");
  assert.deepEqual(
    [...headWritten, ...heads.dropped].sort(),
    [...heads.taken].sort(),
    "every seq taken is written or given back, once",
  );
}

/** Registers the contract tests of seqs from memory for one adapter. */
export function seqStoreContract(contract: Contract): void {
  const test = (behaviour: string, fn: Parameters<typeof contractTest>[2]) =>
    contractTest(contract, behaviour, fn);

  test("reserves ranges that overlap neither each other nor seqs it allocates", async (store) => {
    const ranges: (SeqRange & { user: string })[] = [];
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const user = i % 2 ? "a" : "b";
        if (i % 4 < 2) {
          const range = await store.reserveSeqs(user, 3);
          ranges.push({ user, ...range! });
        } else if (i % 8 < 6) {
          const e = makeEnvelope();
          await store.publishAtomic(e, ["a", "b"], result(e, 2));
        } else await publish(store, ["a", "b"]);
      }),
    );
    for (const user of ["a", "b"]) {
      const owned = new Map<number, string>();
      const own = (seq: number, by: string) => {
        assert.equal(owned.get(seq), undefined, `${user}: seq ${seq} given twice`);
        owned.set(seq, by);
      };
      for (const range of ranges.filter((r) => r.user === user)) {
        assert.equal(range.to - range.from, 2);
        for (let seq = range.from; seq <= range.to; seq++) own(seq, "range");
      }
      for (const item of (await readAll(store, user)).items) own(item.seq, item.id);
      // 10 ranges of 3 and 20 items: every seq up to the last, each given once.
      const last = await store.lastSeq(user);
      assert.equal(last, 50);
      assert.deepEqual(
        [...owned.keys()].sort((x, y) => x - y),
        Array.from({ length: last }, (_, i) => i + 1),
      );
    }
  });

  test("continues a reserved range only when nothing was allocated above it", async (store) => {
    assert.deepEqual(await store.reserveSeqs("u", 5), { from: 1, to: 5 });
    assert.deepEqual(await store.reserveSeqs("u", 5, 5), { from: 6, to: 10 });
    await publish(store, ["u"]);
    assert.equal(await store.lastSeq("u"), 11);
    assert.equal(await store.reserveSeqs("u", 5, 10), undefined, "seq 11 was allocated");
    assert.equal(await store.lastSeq("u"), 11, "nothing reserved");
    assert.deepEqual(await store.reserveSeqs("u", 2, 11), { from: 12, to: 13 });
    // A range reserved from the stored last seq starts above it.
    await publish(store, ["u"]);
    assert.deepEqual(await store.reserveSeqs("u", 1), { from: 15, to: 15 });
    // Once the user is erased, the last seq stays: a head's range goes on from its end.
    await store.eraseUser("u");
    assert.equal(await store.lastSeq("u"), 15);
    assert.deepEqual(await store.reserveSeqs("u", 3, 15), { from: 16, to: 18 });
    assert.equal(await store.lastSeq("u"), 18);
    await assert.rejects(store.reserveSeqs("u", 0), /positive integer/);
  });

  test("publishes at heads' seqs in one commit, beside users without a head", async (store) => {
    const heads = createHeads(store, 5);
    await publish(store, ["h1"]);
    await heads.open("h1", "h2");
    const batches: FanoutBatch[] = [];
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    const published = await store.publishAtomic(e, ["h1", "plain", "h2"], result(e, 3), {
      seqs: heads.source,
    });
    batches.push(published!.batch!);
    assert.deepEqual(
      published?.batch?.items.map((i) => [i.user, i.item.seq, i.pending?.seq]),
      [["h1", 2, 2], ["plain", 1, 1], ["h2", 1, 1]],
    );
    assert.equal(await store.lastSeq("h1"), 6, "a head's seq leaves the reservation's end");
    assert.equal(await store.lastSeq("h2"), 5);
    assert.equal(await store.lastSeq("plain"), 1);
    const next = makeEnvelope();
    const again = await store.publishAtomic(next, ["h1"], result(next, 1), { seqs: heads.source });
    batches.push(again!.batch!);
    assert.equal(again?.batch?.items[0].item.seq, 3);
    // Everything written with a head's item is as with any other.
    assert.equal((await store.findItem("h1", e.metadata.id))?.seq, 2);
    assert.deepEqual((await store.listPending("h2")).map((p) => p.seq), [1]);
    assert.equal(await store.unreadCount("h1", Date.now()), 3);
    assert.deepEqual((await store.getStatus(e.metadata.id))?.pending_users, ["h1", "h2", "plain"]);
    const read = await readAll(store, "h1");
    assert.deepEqual(read.items.map((i) => i.seq), [1, 2, 3]);
    assert.equal(read.last, 6);
    assert.equal(read.complete, true, "reserved seqs not used yet are no loss");
    assertAccounted(heads, batches);
    assert.deepEqual(heads.dropped, []);
  });

  test("fans a job out at heads' seqs, waiting for a head to extend its range", async (store) => {
    const heads = createHeads(store, 2);
    // More than one batch on every database (up to 500 users per commit).
    const targets = users(1200);
    const withHead = targets.filter((_, i) => i % 3 === 0);
    await heads.open(...withHead);
    // u0's range is used up: its next seq waits for an extension.
    const before: FanoutBatch[] = [];
    for (let i = 0; i < 2; i++) {
      const e = makeEnvelope();
      const published = await store.publishAtomic(e, ["u0"], result(e, 1), {
        seqs: heads.source,
      });
      before.push(published!.batch!);
    }
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    await store.createEvent(e, targets, result(e, targets.length));
    const batches: FanoutBatch[] = [];
    await store.runFanout(e.metadata.id, (batch) => void batches.push(batch), {
      seqs: heads.source,
    });
    const items = batches.flatMap((b) => b.items);
    assert.ok(batches.length > 1, "several batches");
    assert.deepEqual(items.map((i) => i.user).sort(), [...targets].sort());
    const seqOf = (user: string) => items.find((i) => i.user === user)!.item.seq;
    assert.equal(seqOf("u0"), 3);
    assert.equal(await store.lastSeq("u0"), 4, "extended by two");
    for (const user of ["u3", "u150", "u297", "u1197"]) {
      assert.equal(seqOf(user), 1);
      assert.equal(await store.lastSeq(user), 2, "the reservation's end");
      assert.equal((await store.findItem(user, e.metadata.id))?.seq, 1);
    }
    for (const user of ["u1", "u299", "u1199"]) assert.equal(await store.lastSeq(user), 1);
    assert.equal((await store.getStatus(e.metadata.id))?.fan_out, "done");
    assertAccounted(heads, [...before, ...batches]);
  });

  test("gives back the seqs of a publish that lost the race for its id", async (store) => {
    const heads = createHeads(store, 10);
    await heads.open("a", "b");
    const e = makeEnvelope();
    const [first, second] = await Promise.all([
      store.publishAtomic(e, ["a", "b"], result(e, 2), { seqs: heads.source }),
      store.publishAtomic(e, ["b", "c", "a"], result(e, 3), { seqs: heads.source }),
    ]);
    assert.deepEqual([first?.created, second?.created].sort(), [false, true]);
    const winner = first?.created ? first : second;
    assert.equal(heads.taken.length, 4, "both took a seq for a and b");
    assert.equal(heads.dropped.length, 2, "the loser gave both back");
    assertAccounted(heads, [winner!.batch!]);
    assert.equal((await readAll(store, "a")).items.length, 1);
    assert.equal((await readAll(store, "b")).items.length, 1);
    assert.equal(await store.lastSeq("c"), first?.created ? 0 : 1);
  });

  test("gives back the seqs two runners of one job took for the same batch", async (store) => {
    const heads = createHeads(store, 3);
    const targets = users(250);
    await heads.open(...targets.filter((_, i) => i % 2 === 0));
    const e = makeEnvelope("REALTIME");
    await store.createEvent(e, targets, result(e, targets.length));
    const batches: FanoutBatch[] = [];
    const onBatch = (batch: FanoutBatch) => void batches.push(batch);
    await Promise.all([
      store.runFanout(e.metadata.id, onBatch, { seqs: heads.source }),
      store.runFanout(e.metadata.id, onBatch, { seqs: heads.source }),
    ]);
    const written = batches.flatMap((b) => b.items.map((i) => i.user));
    assert.deepEqual(written.sort(), [...targets].sort(), "each target written once");
    assertAccounted(heads, batches);
    for (const user of ["u1", "u249"]) assert.equal(await store.lastSeq(user), 1);
    for (const user of ["u0", "u248"]) assert.equal(await store.lastSeq(user), 3);
  });

  test("reads a stream up to a given seq, across seqs never written", async (store) => {
    for (let i = 0; i < 3; i++) await publish(store, ["u"]);
    const range = (await store.reserveSeqs("u", 5))!;
    assert.deepEqual(range, { from: 4, to: 8 });
    // A head writes at 4 and 6; 5 went to an ephemeral item kept in memory only.
    const seqs = [4, 6];
    const source: SeqSource = { take: () => seqs.shift(), drop: () => {} };
    for (let i = 0; i < 2; i++) {
      const e = makeEnvelope();
      await store.publishAtomic(e, ["u"], result(e, 1), { seqs: source });
    }
    const now = Date.now();
    const read = (after: number, upTo?: number) =>
      store.readStream("u", after, { limit: 10, windowMs: 60_000, now, ...(upTo ? { upTo } : {}) });
    const whole = await read(0);
    assert.deepEqual(whole.items.map((i) => i.seq), [1, 2, 3, 4, 6]);
    assert.equal(whole.last, 8);
    assert.equal(whole.complete, true);
    const upTo = await read(2, 5);
    assert.deepEqual([upTo.items.map((i) => i.seq), upTo.last, upTo.complete], [[3, 4], 5, true]);
    assert.deepEqual(await read(5, 5), { items: [], last: 5, complete: true });
    const ahead = await read(6, 5);
    assert.deepEqual([ahead.items, ahead.last, ahead.complete], [[], 5, false]);
    const beyond = await read(0, 12);
    assert.deepEqual([beyond.items.length, beyond.last, beyond.complete], [5, 12, true]);
    const cut = await store.readStream("u", 0, { limit: 2, windowMs: 60_000, now, upTo: 6 });
    assert.deepEqual([cut.items.map((i) => i.seq), cut.complete], [[1, 2], false]);
  });

  test("lists items written out of seq order in seq order", async (store) => {
    const heads = createHeads(store, 10);
    await heads.open("u");
    // The first publish takes seq 1, then waits for its plan while seq 2 is written.
    let release!: () => void;
    const planned = new Promise<void>((resolve) => release = resolve);
    const first = makeEnvelope("NOTIFICATION", { ack: true });
    const slow = store.publishAtomic(first, ["u"], result(first, 1), {
      seqs: heads.source,
      plan: async (targets) => {
        await planned;
        return targets.map(() => ({ quiet: false }));
      },
    });
    const second = makeEnvelope("NOTIFICATION", { ack: true });
    await store.publishAtomic(second, ["u"], result(second, 1), { seqs: heads.source });
    release();
    await slow;
    const now = Date.now();
    const newest = await store.listInbox("u", { limit: 10, unreadOnly: false, now });
    assert.deepEqual(newest.items.map((i) => i.seq), [2, 1]);
    const unread = await store.listInbox("u", { after: 0, limit: 10, unreadOnly: true, now });
    assert.deepEqual(unread.items.map((i) => i.seq), [1, 2]);
    assert.deepEqual((await store.listPending("u")).map((p) => p.seq), [1, 2]);
    assert.deepEqual((await readAll(store, "u")).items.map((i) => i.id), [
      first.metadata.id,
      second.metadata.id,
    ]);
  });

  test("never lets an item replace a newer one written before it", async (store) => {
    const heads = createHeads(store, 10);
    await heads.open("u");
    const collapsing = () => withMetadata({ collapse_key: "k" });
    // The older publish takes its seq first, then waits for its plan while the newer
    // one is written.
    let release!: () => void;
    const planned = new Promise<void>((resolve) => release = resolve);
    const older = collapsing();
    const slow = store.publishAtomic(older, ["u"], result(older, 1), {
      seqs: heads.source,
      plan: async (targets) => {
        await planned;
        return targets.map(() => ({ quiet: false }));
      },
    });
    const newer = collapsing();
    const fast = await store.publishAtomic(newer, ["u"], result(newer, 1), {
      seqs: heads.source,
    });
    release();
    const late = await slow;
    assert.equal(late?.batch?.items[0].item.seq, 1);
    assert.equal(fast?.batch?.items[0].item.seq, 2);
    assert.equal(late?.batch?.items[0].replaces, undefined);
    assert.equal((await store.findItem("u", newer.metadata.id))?.replacedBy, undefined);
    // The key still names the newer item: the next one replaces it.
    const next = collapsing();
    const third = await store.publishAtomic(next, ["u"], result(next, 1), { seqs: heads.source });
    assert.deepEqual(third?.batch?.items[0].replaces, { id: newer.metadata.id, seq: 2 });
    assert.deepEqual((await readAll(store, "u")).items.map((i) => i.seq), [1, 3]);
  });
}
