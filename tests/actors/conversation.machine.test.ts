import assert from "node:assert/strict";
import { createActor, fromPromise, SimulatedClock, waitFor } from "xstate";
import {
  type ConversationContext,
  type ConversationLimits,
  conversationMachine,
  type ConversationOp,
} from "../../actors/conversation.machine.ts";
import { MAX_QUEUE, takeBatch } from "../../actors/conversation.batch.ts";
import type {
  Batch,
  CommitInput,
  CommitOutput,
  ConversationState,
  MemberState,
  OpResult,
} from "../../src/messaging/conversation_store.ts";
import type { ConversationRequest } from "../../src/messaging/conversation_actors.ts";
import { simulatedTime } from "../_support/sim_time.ts";

const LIMITS: ConversationLimits = {
  maxMembers: 4,
  maxMessageLength: 10,
  typingMs: 60,
  idleMs: 60_000,
  maxBatch: 32,
};

function state(
  members: Record<string, MemberState["role"]>,
  options: { kind?: "direct" | "group"; blocks?: Record<string, string[]> } = {},
): ConversationState {
  return {
    info: {
      id: "c1",
      kind: options.kind ?? "group",
      createdAt: 0,
      createdBy: "test",
      members: Object.keys(members).sort(),
    },
    head: { seq: 0, at: 0 },
    headVersion: "v0",
    members: Object.fromEntries(
      Object.entries(members).map((
        [id, role],
      ) => [id, { role, since: 1, read: 0, muted: false, joinedAt: 0 }]),
    ),
    blocks: options.blocks ?? {},
  };
}

/** A fake commit that numbers sends like the store. */
function fakeCommit(input: CommitInput): CommitOutput {
  const { state: s, batch } = input;
  let seq = s.head.seq;
  const results: Record<string, OpResult> = {};
  let members = s.members;
  let info = s.info;
  if (batch.kind === "messages") {
    for (const send of batch.sends) {
      results[send.requestId] = {
        ok: true,
        created: true,
        message: { id: send.requestId, seq: ++seq, from: send.from, text: send.text, at: 0 },
      };
    }
    for (const read of batch.reads) {
      results[read.requestId] = { ok: true, read: read.seq, unread: 0 };
    }
  }
  if (batch.kind === "members") {
    members = { ...members };
    for (const { user, role } of batch.add) {
      members[user] = { role, since: seq + 1, read: seq, muted: false, joinedAt: 0 };
    }
    for (const user of batch.remove) delete members[user];
    info = { ...info, members: Object.keys(members).sort() };
    results[batch.requestId] = { ok: true, members: info.members };
  }
  return {
    head: { ...s.head, seq },
    headVersion: `v${seq}`,
    members,
    info,
    blocks: {},
    results,
    deliveries: [],
    receipts: [],
  };
}

function harness(
  initial: ConversationState,
  options: {
    /** Commits stay in flight until it resolves. */
    held?: Promise<void>;
    fail?: () => boolean;
    limits?: Partial<ConversationLimits>;
    clock?: SimulatedClock;
  } = {},
) {
  const batches: Batch[] = [];
  const replies: { requestId: string; result: OpResult }[] = [];
  const typing: { user: string; to: string[] }[] = [];
  const resumed: ConversationState[] = [];
  let loads = 0;
  let passivated = 0;
  const machine = conversationMachine.provide({
    actions: {
      reply: (_, p) => void replies.push(p),
      broadcastTyping: (_, p) => void typing.push({ user: p.user, to: p.to }),
      passivate: () => void passivated++,
      reportError: () => {},
    },
    actors: {
      commit: fromPromise<CommitOutput, CommitInput>(async ({ input }) => {
        batches.push(input.batch);
        await options.held;
        if (options.fail?.()) throw new Error("KV is down");
        return fakeCommit(input);
      }),
      resume: fromPromise<CommitOutput, ConversationState>(async ({ input }) => {
        resumed.push(input);
        await null;
        return {
          ...fakeCommit({ state: input, batch: { kind: "messages", sends: [], reads: [] } }),
        };
      }),
      load: fromPromise<ConversationState | undefined, { id: string }>(() => {
        loads++;
        return Promise.resolve(initial);
      }),
    },
  });
  const actor = createActor(machine, {
    input: { state: initial, limits: { ...LIMITS, ...options.limits } },
    ...(options.clock ? { clock: options.clock } : {}),
  });
  actor.start();
  let n = 0;
  const submit = (op: ConversationRequest) => {
    const requestId = `q${++n}`;
    actor.send({ type: "op.submit", op: { ...op, requestId } as ConversationOp });
    return requestId;
  };
  const answer = (id: string) => replies.find((r) => r.requestId === id)?.result;
  return {
    actor,
    batches,
    replies,
    typing,
    resumed,
    submit,
    answer,
    loads: () => loads,
    passivated: () => passivated,
  };
}

/** Resolves once `count` requests are answered. */
async function settle(h: ReturnType<typeof harness>, count: number) {
  await waitFor(h.actor, () => h.replies.length >= count, { timeout: 2000 });
}

Deno.test("queued sends are committed in order, the ones waiting together in one batch", async () => {
  const commit = Promise.withResolvers<void>();
  const h = harness(state({ ana: "member", ben: "member" }), { held: commit.promise });
  const ids = ["1", "2", "3", "4", "5"].map((t, i) =>
    h.submit({ kind: "send", from: i % 2 ? "ben" : "ana", text: t })
  );
  // The first send is being committed; the others wait for it.
  assert.equal(h.batches.length, 1);
  commit.resolve();
  await settle(h, 5);
  assert.deepEqual(
    h.batches.map((b) => b.kind === "messages" ? b.sends.map((s) => s.text) : []),
    [["1"], ["2", "3", "4", "5"]],
  );
  assert.deepEqual(
    ids.map((id) => {
      const r = h.answer(id);
      return r?.ok && "message" in r ? r.message.seq : undefined;
    }),
    [1, 2, 3, 4, 5],
  );
  assert.equal(h.actor.getSnapshot().context.head.seq, 5);
  assert.deepEqual(h.actor.getSnapshot().value, "ready");
  h.actor.stop();
});

Deno.test("a request failing its checks is answered at once and never committed", async () => {
  const h = harness(
    state({ ana: "member", ben: "member" }, { kind: "direct", blocks: { ben: ["ana"] } }),
  );
  const outsider = h.submit({ kind: "send", from: "zoe", text: "hi" });
  const long = h.submit({ kind: "send", from: "ben", text: "x".repeat(11) });
  const blocked = h.submit({ kind: "send", from: "ana", text: "coucou" });
  const empty = h.submit({ kind: "send", from: "ben", text: "  " });
  const add = h.submit({
    kind: "add",
    by: { service: "api" },
    users: [{ user: "zoe", role: "member" }],
  });
  await settle(h, 5);
  const code = (id: string) => {
    const r = h.answer(id);
    return r && !r.ok ? r.error.code : "ok";
  };
  assert.equal(code(outsider), "not_member");
  assert.equal(code(long), "too_long");
  assert.equal(code(blocked), "blocked");
  assert.equal(code(empty), "validation_failed");
  assert.equal(code(add), "conflict", "the members of a 1:1 conversation are fixed");
  assert.deepEqual(h.batches, []);
  h.actor.stop();
});

Deno.test("takeBatch groups leading sends and reads and leaves the next membership change queued", () => {
  const context = createActor(conversationMachine, {
    input: { state: state({ ana: "owner", ben: "member" }), limits: LIMITS },
  }).getSnapshot().context as ConversationContext;
  const queue: ConversationOp[] = [
    { kind: "send", requestId: "a", from: "ana", text: "1" },
    { kind: "read", requestId: "b", user: "ben", seq: 1 },
    { kind: "read", requestId: "c", user: "zoe", seq: 1 },
    {
      kind: "add",
      requestId: "d",
      by: { user: "ana" },
      users: [{ user: "chloe", role: "member" }],
    },
    { kind: "send", requestId: "e", from: "ben", text: "2" },
  ];
  const first = takeBatch({ ...context, queue });
  assert.equal(first.batch?.kind, "messages");
  assert.deepEqual(first.inflight, ["a", "b"]);
  assert.deepEqual(first.answered.map((a) => a.requestId), ["c"]);
  assert.deepEqual(first.queue.map((o) => o.requestId), ["d", "e"]);
  const second = takeBatch({ ...context, queue: first.queue });
  assert.equal(second.batch?.kind, "members");
  assert.deepEqual(second.queue.map((o) => o.requestId), ["e"]);
});

Deno.test("only owners and services change members, and the cap answers conversation_full", async () => {
  const h = harness(state({ ana: "owner", ben: "member" }));
  const byMember = h.submit({
    kind: "add",
    by: { user: "ben" },
    users: [{ user: "zoe", role: "member" }],
  });
  const tooMany = h.submit({
    kind: "add",
    by: { user: "ana" },
    users: ["c", "d", "e"].map((user) => ({ user, role: "member" as const })),
  });
  const ok = h.submit({
    kind: "add",
    by: { user: "ana" },
    users: [{ user: "chloe", role: "member" }],
  });
  const kick = h.submit({ kind: "remove", by: { user: "ben" }, user: "ana" });
  const leave = h.submit({ kind: "remove", by: { user: "ben" }, user: "ben" });
  const service = h.submit({ kind: "remove", by: { service: "api" }, user: "chloe" });
  await settle(h, 6);
  const code = (id: string) => {
    const r = h.answer(id);
    return r && !r.ok ? r.error.code : r?.ok ? "ok" : "none";
  };
  assert.deepEqual(
    [byMember, tooMany, ok, kick, leave, service].map(code),
    ["forbidden", "conversation_full", "ok", "forbidden", "ok", "ok"],
  );
  assert.deepEqual(Object.keys(h.actor.getSnapshot().context.members), ["ana"]);
  // Removed members can no longer send.
  const late = h.submit({ kind: "send", from: "ben", text: "encore" });
  await settle(h, 7);
  assert.equal(code(late), "not_member");
  h.actor.stop();
});

Deno.test("typing is broadcast at most once per interval and never to a member who blocked the typist", () => {
  // The machine throttles typing by the wall clock: simulated time moves it too.
  using time = simulatedTime();
  const h = harness(
    state({ ana: "member", ben: "member", chloe: "member" }, { blocks: { chloe: ["ana"] } }),
    { clock: time.clock },
  );
  h.actor.send({ type: "typing", requestId: "t1", user: "ana" });
  h.actor.send({ type: "typing", requestId: "t2", user: "ana" });
  h.actor.send({ type: "typing", requestId: "t3", user: "zoe" });
  assert.deepEqual(h.typing, [{ user: "ana", to: ["ben"] }]);
  assert.equal(h.answer("t2")?.ok, true);
  assert.equal(h.answer("t3")?.ok, false);
  assert.ok(h.actor.getSnapshot().context.typing.ana > 0);
  time.advance(80);
  h.actor.send({ type: "typing", requestId: "t4", user: "ana" });
  assert.equal(h.typing.length, 2);
  time.advance(200);
  assert.deepEqual(h.actor.getSnapshot().context.typing, {}, "typing expires by itself");
  h.actor.stop();
});

Deno.test("a failed commit answers unavailable, reloads the state and keeps serving", async () => {
  let failing = true;
  const h = harness(state({ ana: "member", ben: "member" }), { fail: () => failing });
  const lost = h.submit({ kind: "send", from: "ana", text: "perdu" });
  await settle(h, 1);
  const r = h.answer(lost);
  assert.equal(r?.ok, false);
  assert.equal(!r?.ok && r?.error.code, "unavailable");
  failing = false;
  await waitFor(h.actor, () => h.loads() > 0, { timeout: 2000 });
  assert.equal(h.loads(), 1);
  const next = h.submit({ kind: "send", from: "ana", text: "retour" });
  await settle(h, 2);
  assert.equal(h.answer(next)?.ok, true);
  h.actor.stop();
});

Deno.test("an interrupted fan-out is resumed before any new request", async () => {
  const initial = {
    ...state({ ana: "member", ben: "member" }),
    job: { entries: [{ seq: 1, itemId: "i1", op: "new" as const, from: "ana" }], offset: 1 },
  };
  const h = harness(initial);
  assert.deepEqual(h.actor.getSnapshot().value, "resuming");
  h.submit({ kind: "send", from: "ben", text: "après" });
  await settle(h, 1);
  assert.equal(h.resumed.length, 1);
  assert.equal(h.resumed[0].job?.offset, 1);
  assert.equal(h.batches.length, 1);
  assert.equal(h.actor.getSnapshot().context.job, undefined);
  h.actor.stop();
});

Deno.test("an idle conversation actor asks to be passivated", () => {
  const clock = new SimulatedClock();
  const h = harness(state({ ana: "member", ben: "member" }), { limits: { idleMs: 30 }, clock });
  clock.increment(80);
  assert.ok(h.passivated() >= 1);
  h.actor.stop();
});

Deno.test("a conversation that keeps receiving requests is not passivated; once left alone, it is", async () => {
  const clock = new SimulatedClock();
  const h = harness(state({ ana: "member", ben: "member" }), { limits: { idleMs: 30 }, clock });
  for (let i = 0; i < 10; i++) {
    h.submit({ kind: "send", from: "ana", text: `${i}` });
    await settle(h, i + 1);
    clock.increment(20);
  }
  assert.equal(h.passivated(), 0, "busy for 200 ms of 30 ms idle periods");
  // Left alone: passivated within two idle periods.
  clock.increment(60);
  assert.ok(h.passivated() >= 1);
  h.actor.stop();
});

Deno.test("a conversation with a full queue refuses more requests at once as unavailable", () => {
  const commit = Promise.withResolvers<void>();
  const h = harness(state({ ana: "member", ben: "member" }), { held: commit.promise });
  for (let i = 0; i <= MAX_QUEUE; i++) h.submit({ kind: "send", from: "ana", text: "x" });
  const refused = h.submit({ kind: "send", from: "ana", text: "de trop" });
  const r = h.answer(refused);
  assert.equal(r?.ok === false && r.error.code, "unavailable");
  assert.equal(h.actor.getSnapshot().context.queue.length, MAX_QUEUE);
  h.actor.stop();
  commit.resolve(); // the commit in flight ends
});

/** Names an ordinary object answers to without owning them. */
const PROTO_NAMES = ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"];

Deno.test("a user named after an Object.prototype member is not a member of a conversation they are not in", async () => {
  const h = harness(state({ ana: "owner", ben: "member" }));
  const asked: string[] = [];
  for (const name of PROTO_NAMES) {
    asked.push(
      h.submit({ kind: "send", from: name, text: "intrus" }),
      h.submit({ kind: "read", user: name, seq: 1 }),
      h.submit({ kind: "edit", by: name, seq: 1, text: "x" }),
      h.submit({ kind: "delete", by: name, seq: 1 }),
      h.submit({ kind: "mute", user: name, muted: true }),
      h.submit({ kind: "add", by: { user: name }, users: [{ user: "eve", role: "member" }] }),
      h.submit({ kind: "remove", by: { user: name }, user: "ben" }),
      h.submit({ kind: "remove", by: { service: "lms" }, user: name }),
    );
    h.actor.send({ type: "typing", requestId: `typing-${name}`, user: name });
    asked.push(`typing-${name}`);
    h.actor.send({ type: "blocks.changed", blocker: name, blocked: "ana", on: true });
  }
  await settle(h, asked.length);
  for (const id of asked) {
    const result = h.answer(id);
    assert.equal(result?.ok, false, `${id} answers an error`);
    assert.equal(!result?.ok && result.error.code, "not_member", id);
  }
  assert.deepEqual(h.batches, [], "nothing was committed");
  assert.deepEqual(h.typing, []);
  const context = h.actor.getSnapshot().context;
  assert.deepEqual(Object.keys(context.members), ["ana", "ben"]);
  assert.deepEqual(context.blocks, {});
  assert.equal(h.actor.getSnapshot().status, "active");
  h.actor.stop();
});

Deno.test("a member named after an Object.prototype member sends, reads, types and is blocked like anyone", async () => {
  for (const name of PROTO_NAMES) {
    const members: Record<string, MemberState["role"]> = { ana: "member" };
    Object.defineProperty(members, name, { value: "owner", enumerable: true });
    const h = harness(state(members, { blocks: JSON.parse(`{"${name}": ["ana"]}`) }));
    const sent = h.submit({ kind: "send", from: name, text: "bonjour" });
    const read = h.submit({ kind: "read", user: name, seq: 1 });
    h.actor.send({ type: "typing", requestId: "t", user: name });
    await settle(h, 3);
    assert.equal(h.answer(sent)?.ok, true, `${name} sends`);
    assert.equal(h.answer(read)?.ok, true, `${name} reads`);
    assert.equal(h.answer("t")?.ok, true, `${name} types`);
    // This member blocked ana: ana gets their typing, they do not get hers.
    assert.deepEqual(h.typing, [{ user: name, to: ["ana"] }]);
    h.actor.send({ type: "typing", requestId: "t2", user: "ana" });
    await settle(h, 4);
    assert.deepEqual(h.typing.at(-1), { user: "ana", to: [] }, `${name} blocked ana`);
    const added = h.submit({
      kind: "add",
      by: { user: name },
      users: [{ user: "ben", role: "member" }],
    });
    await settle(h, 5);
    assert.equal(h.answer(added)?.ok, true, `${name} is an owner`);
    assert.equal(h.actor.getSnapshot().status, "active");
    h.actor.stop();
  }
});
