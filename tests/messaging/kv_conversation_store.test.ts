import assert from "node:assert/strict";
import {
  type Batch,
  type ConversationInfo,
  type ConversationState,
  HeadConflictError,
  type MemberState,
  type MessageRecord,
} from "../../src/messaging/conversation_store.ts";
import { countingKv } from "../_support/counting_kv.ts";
import { readingKv } from "../_support/reading_kv.ts";
import { createKvConversationStore } from "../../src/messaging/kv_conversation_store.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import * as keys from "../../src/store/keys.ts";
import type { SeqSource, StreamItem } from "../../src/store/store.ts";

const member = (role: MemberState["role"] = "member"): MemberState => ({
  role,
  since: 1,
  read: 0,
  muted: false,
  joinedAt: 0,
});

async function setup(members: string[], id = "c1") {
  const kv = await Deno.openKv(":memory:");
  const store = createKvConversationStore(kv);
  const streams = createKvStore(kv, { recentWindowMs: 60_000 });
  const info: ConversationInfo = {
    id,
    kind: "group",
    createdAt: 0,
    createdBy: "service:test",
    members: [...members].sort(),
  };
  await store.create(info, Object.fromEntries(members.map((m) => [m, member()])));
  return { kv, store, streams, id };
}

let request = 0;
const send = (from: string, text: string, clientId?: string): Extract<
  Batch,
  { kind: "messages" }
>["sends"][number] => ({
  requestId: `r${++request}`,
  from,
  text,
  ...(clientId ? { clientId } : {}),
});

async function load(store: ReturnType<typeof createKvConversationStore>, id: string) {
  const state = await store.load(id);
  assert.ok(state);
  return state;
}

async function commitSends(
  store: ReturnType<typeof createKvConversationStore>,
  id: string,
  sends: ReturnType<typeof send>[],
  reads: { requestId: string; user: string; seq: number }[] = [],
) {
  const { job: _, ...state } = await load(store, id);
  return await store.commit({ state, batch: { kind: "messages", sends, reads } });
}

async function itemsOf(streams: ReturnType<typeof createKvStore>, user: string) {
  const read = await streams.readStream(user, 0, {
    limit: 10_000,
    windowMs: 60_000,
    now: Date.now(),
  });
  assert.equal(read.complete, true, `stream of ${user} has no gap`);
  return read.items;
}

Deno.test("a batch of sends gets consecutive seqs and one stream item per member", async () => {
  const { kv, store, streams, id } = await setup(["ana", "ben", "chloe"]);
  try {
    const out = await commitSends(store, id, [
      send("ana", "a"),
      send("ben", "b"),
      send("ana", "c"),
    ]);
    const messages = Object.values(out.results).map((r) => "message" in r ? r.message : undefined);
    assert.deepEqual(messages.map((m) => m?.seq), [1, 2, 3]);
    assert.equal(out.head.seq, 3);
    assert.equal(out.head.preview, "c");
    for (const user of ["ana", "ben", "chloe"]) {
      const items = await itemsOf(streams, user);
      assert.deepEqual(items.map((i) => i.msg?.s), [1, 2, 3]);
      assert.ok(items.every((i) => i.type === "MESSAGE" && i.durable && !i.ack));
    }
    assert.equal(out.deliveries.length, 3);
    assert.equal(out.deliveries[0].items.length, 3);
    const listed = Object.fromEntries(
      await Promise.all(
        ["ana", "ben", "chloe"].map(async (u) => [u, (await store.listForUser(u))[0]]),
      ),
    );
    // Sending reads up to one's own message; what others sent after it is unread.
    assert.equal(listed.ana.unread, 0);
    assert.equal(listed.ana.member.read, 3);
    assert.equal(listed.ben.unread, 1);
    assert.equal(listed.ben.member.read, 2);
    assert.equal(listed.chloe.unread, 3);
  } finally {
    kv.close();
  }
});

Deno.test("a known client_id answers with the stored message, across and within batches", async () => {
  const { kv, store, streams, id } = await setup(["ana", "ben"]);
  try {
    const first = await commitSends(store, id, [send("ana", "x", "k1")]);
    const second = await commitSends(store, id, [
      send("ana", "x", "k1"),
      send("ana", "y", "k2"),
      send("ana", "y", "k2"),
      send("ben", "z", "k1"),
    ]);
    const results = Object.values(second.results);
    assert.deepEqual(
      results.map((r) => "message" in r ? [r.message.seq, r.created] : undefined),
      [[1, false], [2, true], [2, false], [3, true]],
    );
    assert.equal(Object.values(first.results)[0].ok, true);
    assert.deepEqual((await itemsOf(streams, "ben")).map((i) => i.msg?.s), [1, 2, 3]);
    const idle = await commitSends(store, id, [send("ana", "x", "k1")]);
    assert.equal(idle.deliveries.length, 0, "a pure resend writes nothing");
  } finally {
    kv.close();
  }
});

Deno.test("new sends read none of their client ids: each is checked absent in the commit", async () => {
  const base = await Deno.openKv(":memory:");
  const reading = readingKv(base);
  const reads = reading.reads;
  const { kv, counts } = countingKv(reading.kv);
  const store = createKvConversationStore(kv);
  const streams = createKvStore(kv, { recentWindowMs: 60_000 });
  const id = "c1";
  await store.create(
    { id, kind: "group", createdAt: 0, createdBy: "service:test", members: ["ana", "ben"] },
    { ana: member(), ben: member() },
  );
  try {
    reads.length = 0;
    const before = counts.commits;
    const first = await commitSends(store, id, [send("ana", "x", "k1"), send("ben", "y", "k2")]);
    assert.deepEqual(
      Object.values(first.results).map((r) => "message" in r && r.created),
      [true, true],
    );
    assert.ok(!reads.includes("msg_client"), `no client id was read: ${reads.join(", ")}`);
    assert.equal(counts.commits - before, 1, "one commit for the batch");

    // A resend fails its check: the batch is planned again from what is stored, once.
    reads.length = 0;
    const failedBefore = counts.failed;
    const again = await commitSends(store, id, [send("ana", "x", "k1"), send("ana", "z", "k3")]);
    assert.deepEqual(
      Object.values(again.results).map((r) => "message" in r ? [r.message.seq, r.created] : []),
      [[1, false], [3, true]],
    );
    assert.ok(reads.includes("msg_client"), "the failed check sent it to read the client ids");
    assert.equal(counts.failed - failedBefore, 1, "only the optimistic commit failed");
    assert.deepEqual((await itemsOf(streams, "ben")).map((i) => i.msg?.s), [1, 2, 3]);
    const stored = await base.get<number>(keys.messageClientKey(id, "ana", "k1"));
    assert.equal(stored.value, 1, "the resend did not move its client id");
  } finally {
    base.close();
  }
});

Deno.test("a member who blocked the author gets no stream item and no unread count", async () => {
  const { kv, store, streams, id } = await setup(["ana", "ben", "chloe"]);
  try {
    await store.setBlock("chloe", "ben", true, 0);
    const state = await load(store, id);
    assert.deepEqual(state.blocks, { chloe: ["ben"] });
    const { job: _, ...rest } = state;
    await store.commit({
      state: rest,
      batch: { kind: "messages", sends: [send("ben", "hé"), send("ana", "salut")], reads: [] },
    });
    assert.deepEqual((await itemsOf(streams, "chloe")).map((i) => i.msg?.s), [2]);
    assert.deepEqual((await itemsOf(streams, "ana")).map((i) => i.msg?.s), [1, 2]);
    assert.equal((await store.listForUser("chloe"))[0].unread, 1);
  } finally {
    kv.close();
  }
});

Deno.test("reads move forward only and count what stays unread", async () => {
  const { kv, store, id } = await setup(["ana", "ben"]);
  try {
    await commitSends(store, id, [send("ana", "1"), send("ana", "2"), send("ana", "3")]);
    const r1 = { requestId: "read-1", user: "ben", seq: 1 };
    const out = await commitSends(store, id, [], [r1]);
    assert.deepEqual(out.results["read-1"], { ok: true, read: 1, unread: 2 });
    assert.deepEqual(out.receipts, [{ user: "ben", seq: 1 }]);
    const back = await commitSends(store, id, [], [{ requestId: "read-0", user: "ben", seq: 0 }]);
    assert.deepEqual(back.results["read-0"], { ok: true, read: 1, unread: 2 });
    assert.deepEqual(back.receipts, []);
    const far = await commitSends(store, id, [send("ana", "4")], [{
      requestId: "read-9",
      user: "ben",
      seq: 99,
    }]);
    // The read applies to what existed before the batch; the new message is unread.
    assert.deepEqual(far.results["read-9"], { ok: true, read: 3, unread: 0 });
    assert.equal((await store.listForUser("ben"))[0].unread, 1);
  } finally {
    kv.close();
  }
});

Deno.test("a delete erases the text and no longer counts as unread", async () => {
  const { kv, store, streams, id } = await setup(["ana", "ben"]);
  try {
    await commitSends(store, id, [send("ana", "oups"), send("ana", "ok")]);
    const { job: _, ...state } = await load(store, id);
    const out = await store.commit({
      state,
      batch: { kind: "delete", requestId: "d", by: "ana", seq: 1, asOwner: false },
    });
    const result = out.results.d;
    assert.ok(result.ok && "message" in result);
    assert.equal(result.message.deleted, true);
    assert.equal(result.message.text, "");
    assert.equal((await store.listForUser("ben"))[0].unread, 1);
    const items = await itemsOf(streams, "ben");
    assert.deepEqual(items.map((i) => [i.msg?.s, i.msg?.op]), [[1, "new"], [2, "new"], [
      1,
      "delete",
    ]]);
    const [stored] = await store.messages(id, [1]);
    assert.equal(stored.text, "");

    const { job: __, ...again } = await load(store, id);
    const byOther = await store.commit({
      state: again,
      batch: { kind: "edit", requestId: "e", by: "ben", seq: 2, text: "non" },
    });
    assert.equal(byOther.results.e.ok, false);
  } finally {
    kv.close();
  }
});

Deno.test("a commit fenced by a stale head version throws a head conflict", async () => {
  const { kv, store, id } = await setup(["ana", "ben"]);
  try {
    const { job: _, ...stale } = await load(store, id);
    await commitSends(store, id, [send("ana", "first writer")]);
    await assert.rejects(
      () =>
        store.commit({
          state: stale,
          batch: { kind: "messages", sends: [send("ben", "second")], reads: [] },
        }),
      HeadConflictError,
    );
    const [head] = await store.messages(id, [1]);
    assert.equal(head.text, "first writer");
    assert.deepEqual(await store.messages(id, [2]), []);
  } finally {
    kv.close();
  }
});

/** A KV handle whose atomic commits fail (as in a crash) after `commits` of them. */
function crashingAfter(kv: Deno.Kv, commits: number): Deno.Kv {
  let count = 0;
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = () => ++count > commits ? Promise.reject(new Error("crash")) : commit();
          return op;
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("a fan-out larger than one commit records a job that a restart resumes without duplicates", async () => {
  const users = Array.from({ length: 250 }, (_, i) => `user-${String(i).padStart(3, "0")}`);
  const { kv, store, streams, id } = await setup(users);
  try {
    const crashing = createKvConversationStore(crashingAfter(kv, 1));
    const { job: _, ...state } = await load(store, id);
    const sends = Array.from({ length: 6 }, (_, i) => send(users[i], `m${i}`, `c${i}`));
    await assert.rejects(
      () => crashing.commit({ state, batch: { kind: "messages", sends, reads: [] } }),
      /crash/,
    );
    assert.deepEqual(await store.unfinished(), [id]);
    const interrupted = await load(store, id);
    assert.ok(interrupted.job);
    assert.equal(interrupted.head.seq, 6, "the messages were accepted with the first commit");
    assert.ok(interrupted.job.offset > 0 && interrupted.job.offset < users.length);

    const out = await store.resume(interrupted);
    assert.deepEqual(await store.unfinished(), []);
    assert.equal(out.deliveries.length, 6);
    for (const user of users) {
      const items = await itemsOf(streams, user);
      assert.deepEqual(items.map((i) => i.msg?.s), [1, 2, 3, 4, 5, 6], user);
    }
    const unread = await store.listForUser(users[200]);
    assert.equal(unread[0].unread, 6);
    const sender = await store.listForUser(users[0]);
    assert.equal(sender[0].unread, 5);
  } finally {
    kv.close();
  }
});

Deno.test("history pages newest first from a member's first visible seq, without excluded authors", async () => {
  const { kv, store, id } = await setup(["ana", "ben"]);
  try {
    const sends = Array.from(
      { length: 12 },
      (_, i) => send(i % 3 === 0 ? "ben" : "ana", `m${i + 1}`),
    );
    await commitSends(store, id, sends);
    const seen: number[] = [];
    let before: number | undefined;
    do {
      const page = await store.history(id, { before, since: 3, limit: 4, exclude: ["ben"] });
      seen.push(...page.messages.map((m: MessageRecord) => m.seq));
      before = page.next;
    } while (before !== undefined);
    assert.deepEqual(seen, [12, 11, 9, 8, 6, 5, 3]);
    assert.deepEqual(
      (await store.history(id, { before: 1, since: 1, limit: 5, exclude: [] })).messages,
      [],
    );
  } finally {
    kv.close();
  }
});

Deno.test("creating a conversation twice under one id keeps the first", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createKvConversationStore(kv);
    const info = (createdBy: string): ConversationInfo => ({
      id: "dm_1",
      kind: "direct",
      createdAt: 1,
      createdBy,
      members: ["ana", "ben"],
    });
    const members = { ana: member(), ben: member() };
    const [a, b] = await Promise.all([
      store.create(info("ana"), members),
      store.create(info("ben"), members),
    ]);
    assert.equal([a.created, b.created].filter(Boolean).length, 1);
    assert.equal(a.info.createdBy, b.info.createdBy);
    assert.deepEqual(await store.conversationsOf("ana"), ["dm_1"]);
    assert.deepEqual(await store.contactsOf("ana"), ["ben"]);
  } finally {
    kv.close();
  }
});

Deno.test("membership changes update the members, the user lists and the new members' blocks", async () => {
  const { kv, store, id } = await setup(["ana", "ben"]);
  try {
    await commitSends(store, id, [send("ana", "avant")]);
    await store.setBlock("chloe", "zed", true, 0);
    const { job: _, ...state } = await load(store, id);
    const out = await store.commit({
      state,
      batch: {
        kind: "members",
        requestId: "m",
        add: [{ user: "chloe", role: "member" }],
        remove: ["ben"],
      },
    });
    assert.deepEqual(out.info.members, ["ana", "chloe"]);
    assert.deepEqual(out.blocks, { chloe: ["zed"] });
    assert.equal(out.members.chloe.since, 2, "a new member sees what follows");
    assert.deepEqual(await store.conversationsOf("ben"), []);
    assert.deepEqual(await store.conversationsOf("chloe"), [id]);
    const loaded: ConversationState = await load(store, id);
    assert.deepEqual(Object.keys(loaded.members).sort(), ["ana", "chloe"]);
    assert.equal(await kv.get(keys.conversationMemberKey(id, "ben")).then((e) => e.value), null);
  } finally {
    kv.close();
  }
});

Deno.test("members named after Object.prototype members send, read, block, join and mute like anyone", async () => {
  const names = ["constructor", "__proto__", "toString", "hasOwnProperty"];
  const { kv, store, streams, id } = await setup(["ana", ...names.slice(0, 2)]);
  try {
    await store.setBlock("__proto__", "ana", true, 0);
    const sent = await commitSends(store, id, [
      send("constructor", "a", "valueOf"),
      send("ana", "b"),
      send("__proto__", "c"),
    ]);
    assert.deepEqual(Object.keys(sent.members).sort(), ["__proto__", "ana", "constructor"]);
    assert.ok(Object.hasOwn(sent.members, "__proto__"));
    assert.equal(sent.members["constructor"].read, 1, "sending reads up to the message");
    assert.equal(sent.members["__proto__"].read, 3);
    const out = await commitSends(store, id, [], [
      { requestId: "read", user: "constructor", seq: 3 },
    ]);
    assert.deepEqual(out.receipts, [{ user: "constructor", seq: 3 }]);
    assert.deepEqual(out.results["read"], { ok: true, read: 3, unread: 0 });
    // __proto__ blocked ana: no item of hers, none of theirs lost.
    assert.deepEqual((await itemsOf(streams, "__proto__")).map((i) => i.msg?.s), [1, 3]);
    assert.deepEqual((await itemsOf(streams, "constructor")).map((i) => i.msg?.s), [1, 2, 3]);

    const loaded = await load(store, id);
    assert.ok(Object.hasOwn(loaded.blocks, "__proto__"));
    assert.deepEqual(loaded.blocks["__proto__"], ["ana"]);
    assert.equal(loaded.members["__proto__"].read, 3);
    const { job: _, ...state } = loaded;
    const added = await store.commit({
      state,
      batch: {
        kind: "members",
        requestId: "m",
        add: names.slice(2).map((user) => ({ user, role: "member" as const })),
        remove: ["constructor"],
      },
    });
    assert.deepEqual(added.info.members, ["__proto__", "ana", "hasOwnProperty", "toString"]);
    assert.ok(!Object.hasOwn(added.members, "constructor"));
    const muted = await store.commit({
      state: { ...state, members: added.members, headVersion: added.headVersion },
      batch: { kind: "mute", requestId: "u", user: "toString", muted: true },
    });
    assert.equal(muted.members["toString"].muted, true);
    assert.equal((await store.member(id, "toString"))?.muted, true);
    assert.equal(await store.member(id, "constructor"), undefined);
  } finally {
    kv.close();
  }
});

Deno.test("a stray member record of a user who never joined makes no member", async () => {
  const { kv, store, id } = await setup(["ana", "ben"]);
  try {
    await commitSends(store, id, [send("ana", "a")]);
    // What an older version saved for a non-member's read receipt.
    await kv.set(keys.conversationMemberKey(id, "constructor"), { read: 1 });
    await kv.set(keys.conversationMemberKey(id, "valueOf"), member());
    const loaded = await load(store, id);
    assert.deepEqual(Object.keys(loaded.members).sort(), ["ana", "ben"]);
    assert.equal(await store.member(id, "constructor"), undefined);
    // The state loaded still commits a legitimate read.
    const out = await commitSends(store, id, [], [{ requestId: "r", user: "ben", seq: 1 }]);
    assert.deepEqual(out.receipts, [{ user: "ben", seq: 1 }]);
  } finally {
    kv.close();
  }
});

/**
 * A stand-in for the stream heads: per user, the next seq and the end of a range reserved
 * in the store as a head's reservation does (the stored last seq moved to its end). It
 * records every seq taken and dropped.
 */
function createTestSeqs(kv: Deno.Kv, options: { promises?: boolean } = {}) {
  const heads = new Map<string, { next: number; ceiling: number }>();
  const takes: [string, number][] = [];
  const drops: [string, number][] = [];
  const awaited: { count: number; resolve(): void }[] = [];
  return {
    takes,
    drops,
    /** Resolves once `count` seqs were taken in all (at the take that makes them `count`). */
    taken(count: number): Promise<void> {
      if (takes.length >= count) return Promise.resolve();
      return new Promise((resolve) => awaited.push({ count, resolve }));
    },
    /** Gives `user` a head with `count` seqs reserved after their stored last seq. */
    async open(user: string, count = 100) {
      const last = (await kv.get<number>(keys.seqKey(user))).value ?? 0;
      await kv.set(keys.seqKey(user), last + count);
      heads.set(user, { next: last + 1, ceiling: last + count });
    },
    take(user: string) {
      const head = heads.get(user);
      if (!head) return undefined;
      assert.ok(head.next <= head.ceiling, `the range of ${user} is used up`);
      const seq = head.next++;
      takes.push([user, seq]);
      for (const wait of awaited) if (takes.length >= wait.count) wait.resolve();
      return options.promises ? Promise.resolve(seq) : seq;
    },
    drop(user: string, seq: number) {
      drops.push([user, seq]);
    },
  } satisfies SeqSource & Record<string, unknown>;
}

/** Every stream item stored for `user`, gaps included, read straight from KV. */
async function storedItems(kv: Deno.Kv, user: string): Promise<StreamItem[]> {
  const out: StreamItem[] = [];
  const iter = kv.list<StreamItem>({
    start: keys.streamKey(user, 0),
    end: keys.streamKey(user, Number.MAX_SAFE_INTEGER),
  });
  for await (const entry of iter) out.push(entry.value);
  return out;
}

/** A KV handle that counts atomic commits and runs `before` ahead of the first one. */
const countingCommits = (kv: Deno.Kv, before?: () => Promise<unknown>) =>
  countingKv(kv, (n) => n === 0 ? before?.() : undefined);

const pairs = (out: { deliveries: { items: { user: string; item: StreamItem }[] }[] }) =>
  out.deliveries.flatMap((d) => d.items.map(({ user, item }) => [user, item.seq]));

Deno.test("a member with a live head gets items at the head's seqs and keeps their stored seq untouched", async () => {
  const { kv, store, streams, id } = await setup(["ana", "ben"]);
  try {
    await commitSends(store, id, [send("ben", "before")]);
    const seqs = createTestSeqs(kv);
    await seqs.open("ana");
    const reserved = await kv.get<number>(keys.seqKey("ana"));
    assert.equal(reserved.value, 101);

    const { job: _, ...state } = await load(store, id);
    const out = await store.commit({
      state,
      batch: { kind: "messages", sends: [send("ben", "hi"), send("ana", "yo")], reads: [] },
      seqs,
    });
    assert.deepEqual(seqs.takes, [["ana", 2], ["ana", 3]]);
    assert.deepEqual((await storedItems(kv, "ana")).map((i) => [i.seq, i.msg?.s]), [
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    const after = await kv.get<number>(keys.seqKey("ana"));
    assert.equal(after.value, 101, "the reservation's end stays the stored last seq");
    assert.equal(after.versionstamp, reserved.versionstamp, "nothing wrote ana's seq");
    // ben has no head: his items follow his stored last seq, which moves with them.
    assert.deepEqual((await itemsOf(streams, "ben")).map((i) => [i.seq, i.msg?.s]), [
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    assert.equal((await kv.get<number>(keys.seqKey("ben"))).value, 3);

    // An edit takes its seq from the head too.
    const edited = await store.commit({
      state: { ...state, members: out.members, head: out.head, headVersion: out.headVersion },
      batch: { kind: "edit", requestId: "e", by: "ana", seq: 3, text: "yo!" },
      seqs,
    });
    assert.deepEqual(seqs.takes.at(-1), ["ana", 4]);
    assert.deepEqual(
      (await storedItems(kv, "ana")).map((i) => [i.seq, i.msg?.op]).at(-1),
      [4, "edit"],
    );
    assert.deepEqual(seqs.drops, []);
    // Every seq taken reaches live delivery with the item written at it.
    const delivered = [...pairs(out), ...pairs(edited)].filter(([u]) => u === "ana");
    assert.deepEqual(delivered, seqs.takes);
  } finally {
    kv.close();
  }
});

Deno.test("more members with live heads than one commit may check share one commit, each at unique seqs", async () => {
  const users = Array.from({ length: 150 }, (_, i) => `user-${String(i).padStart(3, "0")}`);
  const { kv, store, id } = await setup([...users, "zoe", "zed"]);
  try {
    const seqs = createTestSeqs(kv, { promises: true });
    for (const user of users) await seqs.open(user, 10);
    const counted = countingCommits(kv);
    const counting = createKvConversationStore(counted.kv);
    const { job: _, ...state } = await load(store, id);
    const out = await counting.commit({
      state,
      batch: {
        kind: "messages",
        sends: [send(users[0], "a"), send("zoe", "b"), send(users[149], "c")],
        reads: [],
      },
      seqs,
    });
    assert.equal(counted.counts.commits, 1, "one commit, no fan-out job");
    assert.deepEqual(await store.unfinished(), []);
    assert.equal(seqs.takes.length, 150 * 3);
    assert.deepEqual(seqs.drops, []);
    for (const user of users) {
      const items = await storedItems(kv, user);
      assert.deepEqual(items.map((i) => [i.seq, i.msg?.s]), [[1, 1], [2, 2], [3, 3]], user);
      assert.equal((await kv.get<number>(keys.seqKey(user))).value, 10, user);
    }
    for (const user of ["zoe", "zed"]) {
      assert.deepEqual((await storedItems(kv, user)).map((i) => i.seq), [1, 2, 3], user);
      assert.equal((await kv.get<number>(keys.seqKey(user))).value, 3, user);
    }
    const delivered = pairs(out);
    assert.equal(delivered.length, 152 * 3);
    assert.equal(new Set(delivered.map(([u, s]) => `${u}\u0000${s}`)).size, delivered.length);
    const sorted = (list: (string | number)[][]) => list.map((p) => p.join("\u0000")).sort();
    assert.deepEqual(
      sorted(delivered.filter(([u]) => u !== "zoe" && u !== "zed")),
      sorted(seqs.takes),
    );
  } finally {
    kv.close();
  }
});

Deno.test("a commit retried after a stored seq moved reuses the seqs it took from heads", async () => {
  const { kv, streams, id } = await setup(["ana", "ben"]);
  try {
    const seqs = createTestSeqs(kv);
    await seqs.open("ana");
    // A publish to ben lands between the commit's read and its commit.
    const counted = countingCommits(kv, () => kv.set(keys.seqKey("ben"), 1));
    const racing = createKvConversationStore(counted.kv);
    const { job: _, ...state } = await load(racing, id);
    const out = await racing.commit({
      state,
      batch: { kind: "messages", sends: [send("ben", "hi")], reads: [] },
      seqs,
    });
    assert.equal(counted.counts.commits, 2, "the first commit lost to the publish");
    assert.deepEqual(seqs.takes, [["ana", 1]], "taken once, kept for the retry");
    assert.deepEqual(seqs.drops, []);
    assert.deepEqual(pairs(out).sort(), [["ana", 1], ["ben", 2]]);
    assert.deepEqual((await storedItems(kv, "ana")).map((i) => i.seq), [1]);
    assert.deepEqual(
      (await streams.readStream("ben", 1, {
        limit: 10,
        windowMs: 60_000,
        now: Date.now(),
      })).items.map((i) => i.seq),
      [2],
    );
  } finally {
    kv.close();
  }
});

Deno.test("a commit that loses to a concurrent writer drops every seq it took", async () => {
  const { kv, store, id } = await setup(["ana", "ben", "chloe"]);
  try {
    const seqs = createTestSeqs(kv);
    await seqs.open("ana");
    await seqs.open("chloe");
    const { job: _, ...stale } = await load(store, id);
    await commitSends(store, id, [send("ben", "first writer")]);
    const before = await Promise.all(["ana", "chloe"].map((u) => storedItems(kv, u)));
    await assert.rejects(
      () =>
        store.commit({
          state: stale,
          batch: { kind: "messages", sends: [send("ben", "a"), send("ana", "b")], reads: [] },
          seqs,
        }),
      HeadConflictError,
    );
    assert.equal(seqs.takes.length, 4);
    assert.deepEqual(seqs.drops, seqs.takes, "nothing taken is lost");
    assert.deepEqual(await Promise.all(["ana", "chloe"].map((u) => storedItems(kv, u))), before);
  } finally {
    kv.close();
  }
});

Deno.test("a fan-out that crashes drops the seqs its failed commit took, and a resume takes new ones", async () => {
  const users = Array.from({ length: 250 }, (_, i) => `user-${String(i).padStart(3, "0")}`);
  const { kv, store, id } = await setup(users);
  try {
    const seqs = createTestSeqs(kv);
    for (const user of users) await seqs.open(user, 20);
    const crashing = createKvConversationStore(crashingAfter(kv, 1));
    const { job: _, ...state } = await load(store, id);
    const sends = Array.from({ length: 6 }, (_, i) => send(users[i], `m${i}`));
    await assert.rejects(
      () => crashing.commit({ state, batch: { kind: "messages", sends, reads: [] }, seqs }),
      /crash/,
    );
    const interrupted = await load(store, id);
    assert.ok(interrupted.job);
    assert.ok(seqs.drops.length > 0, "the failed commit's seqs went back");
    const out = await store.resume(interrupted, { seqs });
    assert.deepEqual(await store.unfinished(), []);

    // Every seq taken is either written or dropped, never both.
    const dropped = new Set(seqs.drops.map((p) => p.join("\u0000")));
    for (const [user, seq] of seqs.takes) {
      const written = (await kv.get(keys.streamKey(user, seq))).value !== null;
      assert.notEqual(written, dropped.has(`${user}\u0000${seq}`), `${user} ${seq}`);
    }
    const resumed = new Set(pairs(out).map((p) => p.join("\u0000")));
    for (const user of users) {
      const items = await storedItems(kv, user);
      assert.deepEqual(items.map((i) => i.msg?.s), [1, 2, 3, 4, 5, 6], user);
      assert.equal((await kv.get<number>(keys.seqKey(user))).value, 20, user);
    }
    // What the resume wrote, it handed back for live delivery.
    const fromResume = seqs.takes.filter((p) => resumed.has(p.join("\u0000")));
    assert.equal(fromResume.length, resumed.size);
  } finally {
    kv.close();
  }
});

/** Conversations `c00`, `c01`… each with members `a-<n>`, `b-<n>` and `shared`, in one KV. */
async function setupMany(count: number, shared: string[]) {
  const kv = await Deno.openKv(":memory:");
  const store = createKvConversationStore(kv);
  const ids = Array.from({ length: count }, (_, n) => `c${String(n).padStart(2, "0")}`);
  for (const id of ids) {
    const members = [`a-${id}`, `b-${id}`, ...shared].sort();
    await store.create(
      { id, kind: "group", createdAt: 0, createdBy: "service:test", members },
      Object.fromEntries(members.map((m) => [m, member()])),
    );
  }
  return { kv, store, ids };
}

/**
 * A KV handle that records each atomic commit: how many conversation heads it fences and
 * whether it landed. Its first commit starts only once the promise given to `holdFirst`
 * resolved. A write whose last await before the group commit resolved by then is queued
 * behind it when it lands: what follows that await runs in microtasks, which all run
 * before the commit's I/O can complete.
 */
function recordingCommits(kv: Deno.Kv) {
  const commits: { heads: number; ok: boolean }[] = [];
  let hold: Promise<unknown> | undefined;
  let first = true;
  // Completed `getMany` reads, by key, and who waits for a number of them.
  const reads = new Map<string, number>();
  const readers: { key: string; count: number; resolve(): void }[] = [];
  const handle = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          let heads = 0;
          const check = op.check.bind(op);
          op.check = (...checks) => {
            heads += checks.filter((c) => c.key[0] === "conv_head").length;
            return check(...checks);
          };
          const commit = op.commit.bind(op);
          op.commit = async () => {
            if (first) {
              first = false;
              await hold;
            }
            const res = await commit();
            commits.push({ heads, ok: res.ok });
            return res;
          };
          return op;
        };
      }
      if (prop === "getMany") {
        return async (list: Deno.KvKey[], options?: { consistency?: Deno.KvConsistencyLevel }) => {
          const entries = await target.getMany(list, options);
          for (const key of list.map((k) => JSON.stringify(k))) {
            reads.set(key, (reads.get(key) ?? 0) + 1);
          }
          for (const r of readers) if ((reads.get(r.key) ?? 0) >= r.count) r.resolve();
          return entries;
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return {
    handle,
    commits,
    /** Holds the first commit until `until` resolves. */
    holdFirst(until: Promise<unknown>) {
      hold = until;
    },
    /** Resolves once `key` was read with `getMany` `count` times. */
    readOf(key: Deno.KvKey, count: number): Promise<void> {
      const id = JSON.stringify(key);
      if ((reads.get(id) ?? 0) >= count) return Promise.resolve();
      return new Promise((resolve) => readers.push({ key: id, count, resolve }));
    },
  };
}

Deno.test("batches of many conversations committed at once share a few KV commits, each member at unique seqs", async () => {
  const { kv, store, ids } = await setupMany(50, ["hub"]);
  try {
    const seqs = createTestSeqs(kv);
    await seqs.open("hub", ids.length * 2);
    for (const id of ids) for (const user of [`a-${id}`, `b-${id}`]) await seqs.open(user, 10);
    const recorded = recordingCommits(kv);
    // Once every conversation took its seqs, nothing but microtasks stands before its write.
    recorded.holdFirst(seqs.taken(ids.length * 3));
    const grouped = createKvConversationStore(recorded.handle);
    const states = await Promise.all(ids.map(async (id) => {
      const { job: _, ...state } = await load(store, id);
      return state;
    }));
    // Every conversation's batch starts in the same turn, like actors woken together.
    const outs = await Promise.all(states.map((state) =>
      grouped.commit({
        state,
        batch: {
          kind: "messages",
          sends: [send(`a-${state.info.id}`, `first ${state.info.id}`, "k1")],
          reads: [],
        },
        seqs,
      })
    ));
    assert.ok(
      recorded.commits.length <= 5,
      `${ids.length} writes took ${recorded.commits.length} commits`,
    );
    assert.ok(recorded.commits.every((c) => c.ok));

    // A second batch each, again all at once, fenced by the versionstamps the first got.
    const again = await Promise.all(outs.map((out, n) =>
      grouped.commit({
        state: {
          ...states[n],
          head: out.head,
          headVersion: out.headVersion,
          members: out.members,
        },
        batch: { kind: "messages", sends: [send(`b-${ids[n]}`, `second ${ids[n]}`)], reads: [] },
        seqs,
      })
    ));
    assert.ok(recorded.commits.length < ids.length, "the second round is grouped too");

    for (const [n, id] of ids.entries()) {
      const messages = await store.messages(id, [1, 2, 3]);
      assert.deepEqual(messages.map((m) => [m.seq, m.text]), [[1, `first ${id}`], [
        2,
        `second ${id}`,
      ]]);
      assert.equal((await store.head(id))?.seq, 2);
      for (const user of [`a-${id}`, `b-${id}`]) {
        assert.deepEqual((await storedItems(kv, user)).map((i) => [i.seq, i.msg?.s]), [[1, 1], [
          2,
          2,
        ]]);
      }
      assert.equal(outs[n].deliveries[0].items.length, 3);
      assert.equal(again[n].deliveries[0].items.length, 3);
    }
    // The member of every conversation got each message once, at seqs of its own.
    const hub = await storedItems(kv, "hub");
    assert.equal(hub.length, ids.length * 2);
    assert.equal(new Set(hub.map((i) => i.seq)).size, hub.length);
    for (const id of ids) {
      assert.deepEqual(hub.filter((i) => i.msg?.c === id).map((i) => i.msg?.s), [1, 2], id);
    }
    assert.deepEqual(seqs.drops, []);
    const delivered = [...outs, ...again].flatMap(pairs);
    const sorted = (list: (string | number)[][]) => list.map((p) => p.join("\u0000")).sort();
    assert.deepEqual(sorted(delivered), sorted(seqs.takes));
  } finally {
    kv.close();
  }
});

Deno.test("a head conflict in one conversation of a group fails only that conversation", async () => {
  const { kv, store, ids } = await setupMany(10, []);
  try {
    const seqs = createTestSeqs(kv);
    for (const id of ids) for (const user of [`a-${id}`, `b-${id}`]) await seqs.open(user, 10);
    const states = await Promise.all(ids.map(async (id) => {
      const { job: _, ...state } = await load(store, id);
      return state;
    }));
    // Another writer of c03 commits after its state was loaded.
    await commitSends(store, "c03", [send("a-c03", "first writer")]);
    const takenBefore = seqs.takes.length;
    const recorded = recordingCommits(kv);
    recorded.holdFirst(seqs.taken(takenBefore + ids.length * 2));
    const grouped = createKvConversationStore(recorded.handle);
    const settled = await Promise.allSettled(states.map((state) =>
      grouped.commit({
        state,
        batch: { kind: "messages", sends: [send(`b-${state.info.id}`, "hi")], reads: [] },
        seqs,
      })
    ));

    assert.ok(
      recorded.commits.some((c) => !c.ok && c.heads > 1),
      "the stale write failed a commit it shared with others",
    );
    for (const [n, id] of ids.entries()) {
      const result = settled[n];
      if (id === "c03") {
        assert.equal(result.status, "rejected");
        assert.ok(result.reason instanceof HeadConflictError);
        assert.deepEqual((await store.messages(id, [1, 2])).map((m) => m.text), ["first writer"]);
        continue;
      }
      assert.equal(result.status, "fulfilled", id);
      assert.equal(result.value.head.seq, 1);
      assert.deepEqual((await store.messages(id, [1])).map((m) => m.text), ["hi"]);
      for (const user of [`a-${id}`, `b-${id}`]) {
        assert.deepEqual((await storedItems(kv, user)).map((i) => i.msg?.s), [1], user);
      }
    }
    // What the loser took went back; what the others took was written.
    const lost = seqs.takes.slice(takenBefore).filter(([user]) => user.endsWith("-c03"));
    assert.equal(lost.length, 2);
    assert.deepEqual(seqs.drops, lost);
  } finally {
    kv.close();
  }
});

Deno.test("conversations sharing a member whose seq is stored never share a commit that writes it", async () => {
  const { kv, store, ids } = await setupMany(20, ["zed"]);
  try {
    const seqs = createTestSeqs(kv);
    for (const id of ids) for (const user of [`a-${id}`, `b-${id}`]) await seqs.open(user, 10);
    const recorded = recordingCommits(kv);
    // zed's stored seq is the last read before each write: all of them wait together.
    recorded.holdFirst(recorded.readOf(keys.seqKey("zed"), ids.length));
    const grouped = createKvConversationStore(recorded.handle);
    const states = await Promise.all(ids.map(async (id) => {
      const { job: _, ...state } = await load(store, id);
      return state;
    }));
    await Promise.all(states.map((state) =>
      grouped.commit({
        state,
        batch: { kind: "messages", sends: [send(`a-${state.info.id}`, "hi")], reads: [] },
        seqs,
      })
    ));
    // zed has no live head: each item follows the stored last seq, checked.
    const zed = await storedItems(kv, "zed");
    assert.deepEqual(zed.map((i) => i.seq), Array.from({ length: ids.length }, (_, i) => i + 1));
    assert.deepEqual(zed.map((i) => i.msg?.c).sort(), ids);
    assert.equal((await kv.get<number>(keys.seqKey("zed"))).value, ids.length);
    assert.ok(recorded.commits.filter((c) => c.ok).every((c) => c.heads === 1));
  } finally {
    kv.close();
  }
});
