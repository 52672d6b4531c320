import assert from "node:assert/strict";
import { createKvStore } from "../../src/store/kv_store.ts";
import * as keys from "../../src/store/keys.ts";
import type { Envelope } from "../../src/schemas/envelope.ts";
import type { Store } from "../../src/store/store.ts";
import { makeEnvelope, result, withStore } from "../_support/store.ts";

async function publish(store: Store, targets: string[], e = makeEnvelope()) {
  await store.createEvent(e, targets, result(e, targets.length));
  await store.runFanout(e.metadata.id, () => {});
  return e;
}

Deno.test("kv store gives each user contiguous seqs under concurrent publishes", async () => {
  await withStore(async (store) => {
    const users = ["a", "b", "c"];
    await Promise.all(Array.from({ length: 30 }, (_, i) => publish(store, [users[i % 3], "all"])));
    for (const user of [...users, "all"]) {
      const read = await store.readStream(user, 0, {
        limit: 100,
        windowMs: 60_000,
        now: Date.now(),
      });
      const expected = user === "all" ? 30 : 10;
      assert.equal(read.last, expected);
      assert.deepEqual(
        read.items.map((i) => i.seq),
        Array.from({ length: expected }, (_, i) => i + 1),
      );
      assert.equal(new Set(read.items.map((i) => i.id)).size, expected);
      assert.equal(read.complete, true);
    }
  });
});

Deno.test("kv store resumes an interrupted fan-out without duplicates or losses", async () => {
  await withStore(async (store) => {
    const users = Array.from({ length: 2500 }, (_, i) => `user-${i}`);
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    await store.createEvent(e, users, result(e, users.length));
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
    for (const user of [users[0], users[500], users[1000], users[2499]]) {
      assert.equal(await store.lastSeq(user), 1, user);
      assert.equal((await store.listPending(user)).length, 1);
    }
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.fan_out, "done");
    assert.equal(status.targeted, 2500);
  });
});

Deno.test("kv store reports a resume as incomplete when an item is gone", async () => {
  await withStore(async (store, kv) => {
    for (let i = 0; i < 4; i++) await publish(store, ["u"]);
    await kv.delete(keys.streamKey("u", 2));
    const read = await store.readStream("u", 0, { limit: 10, windowMs: 60_000, now: Date.now() });
    assert.deepEqual(read.items.map((i) => i.seq), [1, 3, 4]);
    assert.equal(read.complete, false);
    const tail = await store.readStream("u", 2, { limit: 10, windowMs: 60_000, now: Date.now() });
    assert.equal(tail.complete, true);
    const cut = await store.readStream("u", 0, { limit: 1, windowMs: 60_000, now: Date.now() });
    assert.equal(cut.complete, false, "a limit that cuts the replay short is reported");
    const ahead = await store.readStream("u", 9, { limit: 10, windowMs: 60_000, now: Date.now() });
    assert.equal(ahead.complete, false, "a client ahead of the server cannot be served");
  });
});

Deno.test("kv store round-trips a 64 KiB payload of multi-byte text", async () => {
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

Deno.test("kv store counts an ack once, however often it is repeated", async () => {
  await withStore(async (store) => {
    const e = await publish(store, ["a", "b"], makeEnvelope("NOTIFICATION", { ack: true }));
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
});

Deno.test("kv store keeps the inbox unread count in step with reads", async () => {
  await withStore(async (store) => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await publish(store, ["u"])).metadata.id);
    await publish(store, ["u"], makeEnvelope("REALTIME"));
    const now = Date.now();
    assert.equal(await store.unreadCount("u", now), 3);
    assert.equal(await store.markRead("u", ids[1], now), true);
    assert.equal(await store.markRead("u", "missing", now), false);
    const unread = await store.listInbox("u", { limit: 10, unreadOnly: true, now });
    assert.deepEqual(unread.items.map((i) => i.id), [ids[2], ids[0]]);
    const all = await store.listInbox("u", { limit: 2, unreadOnly: false, now });
    assert.deepEqual(all.items.map((i) => i.id), [ids[2], ids[1]], "newest first, no REALTIME");
    assert.equal(all.next, all.items[1].seq);
    assert.equal(await store.markAllRead("u", now), 2);
    assert.equal(await store.unreadCount("u", now), 0);
  });
});

Deno.test("kv store gives a ticket out once", async () => {
  await withStore(async (store) => {
    const record = {
      principal: { kind: "user" as const, id: "u", roles: [], structures: [] },
      expiresAt: Date.now() + 60_000,
    };
    await store.putTicket("h", record);
    const taken = await Promise.all([store.takeTicket("h"), store.takeTicket("h")]);
    assert.equal(taken.filter(Boolean).length, 1);
    assert.equal(await store.takeTicket("h"), undefined);
  });
});

Deno.test("kv store counts a delivery once when it is recorded twice", async () => {
  await withStore(async (store) => {
    const e = await publish(store, ["a", "b", "c"], makeEnvelope("NOTIFICATION", { ack: true }));
    const id = e.metadata.id;
    const now = Date.now();
    await store.markDelivered([{ id, user: "a" }, { id, user: "a" }, { id, user: "b" }], now);
    await store.markDelivered([{ id, user: "a" }], now);
    const status = (await store.getStatus(id))!;
    assert.equal(status.delivered, 2);
    assert.deepEqual(status.pending_users, ["a", "b", "c"], "delivered is not acked");
  });
});

Deno.test("kv store publishes a small audience in one commit without a fan-out job", async () => {
  await withStore(async (store, kv) => {
    const e = makeEnvelope("NOTIFICATION", { ack: true });
    await publish(store, ["a"]);
    const published = await store.publishAtomic(e, ["a", "b"], result(e, 2));
    assert.ok(published);
    assert.equal(published.created, true);
    assert.equal(published.event.fanningOut, false);
    assert.deepEqual(published.batch?.items.map((i) => [i.user, i.item.seq]), [["a", 2], ["b", 1]]);
    assert.equal(published.batch?.items[0].pending?.seq, 2);
    assert.equal((await kv.get(keys.jobKey(e.metadata.id))).value, null);
    assert.deepEqual(await store.unfinishedFanouts(), []);
    assert.deepEqual(await store.getEnvelope(e.metadata.id), e);
    assert.equal((await store.listPending("b")).length, 1);
    assert.equal(await store.unreadCount("a", Date.now()), 2);
    const status = (await store.getStatus(e.metadata.id))!;
    assert.equal(status.fan_out, "done");
    assert.equal(status.targeted, 2);
    assert.deepEqual(status.pending_users.sort(), ["a", "b"]);
  });
});

Deno.test("kv store returns the first event when a one-commit publish is repeated", async () => {
  await withStore(async (store) => {
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

Deno.test("kv store keeps seqs contiguous when one-commit publishes race", async () => {
  await withStore(async (store) => {
    await Promise.all(
      Array.from({ length: 30 }, (_, i) => {
        if (i % 5 === 0) return publish(store, ["a", "b"]);
        const e = makeEnvelope();
        return store.publishAtomic(e, ["a", i % 2 ? "b" : "c"], result(e, 2));
      }),
    );
    for (const [user, expected] of [["a", 30], ["b", 18], ["c", 12]] as const) {
      const read = await store.readStream(user, 0, {
        limit: 100,
        windowMs: 60_000,
        now: Date.now(),
      });
      assert.equal(read.last, expected);
      assert.deepEqual(
        read.items.map((i) => i.seq),
        Array.from({ length: expected }, (_, i) => i + 1),
      );
      assert.equal(new Set(read.items.map((i) => i.id)).size, expected);
    }
  });
});

Deno.test("kv store collapses and plans mail in a one-commit publish", async () => {
  await withStore(async (store, kv) => {
    const collapsing = (): Envelope => {
      const e = makeEnvelope();
      return { ...e, metadata: { ...e.metadata, collapse_key: "activity:42" } };
    };
    const plan = (users: string[]) =>
      Promise.resolve(
        users.map((u) => u === "quiet" ? { quiet: true } : { quiet: false, mailAt: 5 }),
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
    const tasks = [];
    for await (const t of kv.list({ prefix: keys.mailTaskPrefix() })) tasks.push(t.key[2]);
    assert.deepEqual(tasks.sort(), [`${first.metadata.id}:a`, `${second.metadata.id}:a`].sort());
    const status = (await store.getStatus(second.metadata.id))!;
    assert.deepEqual(status.pending_users, ["a"]);
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
function instrumented(kv: Deno.Kv, beforeCommit: () => Promise<void> = () => Promise.resolve()) {
  const counts = { commits: 0, failed: 0 };
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = async () => {
            counts.commits++;
            await beforeCommit();
            const res = await commit();
            if (!res.ok) counts.failed++;
            return res;
          };
          return op;
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: proxy, counts };
}

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

Deno.test("kv store records who published an event, on both publish paths", async () => {
  await withStore(async (store) => {
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
});

Deno.test("kv store fans an event out to its own targets when another publish of its id races it", async () => {
  await withStore(async (store) => {
    const e = makeEnvelope("REALTIME");
    const mine = Array.from({ length: 200 }, (_, i) => `mine-${i}`);
    const theirs = Array.from({ length: 200 }, (_, i) => `theirs-${i}`);
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
});
