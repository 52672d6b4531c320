/** The user machine: presence, batches of items, pacing, acks, passivation. */

import assert from "node:assert/strict";
import { createActor, fromPromise, SimulatedClock, waitFor } from "xstate";
import {
  type LiveItem,
  type Pacing,
  type RedeliverInput,
  type RedeliverOutput,
  userMachine,
} from "../../actors/user.machine.ts";
import { redeliveryDelay } from "../../actors/user.redelivery.ts";
import { userTimers } from "../../actors/user.timers.ts";
import type { PendingAck } from "../../src/store/store.ts";
import { simulatedTime } from "../_support/sim_time.ts";

function live(
  seq: number,
  options: { ack?: boolean; limit?: number; pace?: LiveItem["pace"] } = {},
): LiveItem {
  const id = `e${seq}`;
  return {
    item: {
      seq,
      id,
      type: "NOTIFICATION",
      durable: true,
      ack: options.ack ?? false,
      at: Date.now(),
    },
    pending: options.ack
      ? { seq, id, attempts: 0, limit: options.limit ?? 3, backoff: "FIXED" }
      : undefined,
    frame: `{"seq":${seq}}`,
    acceptedAt: Date.now(),
    ...(options.pace ? { pace: options.pace } : {}),
  };
}

/** Whether the actor waits on the timer `id` (its context says so). */
const waitingOn = (snapshot: Parameters<typeof userTimers>[0], id: string) =>
  userTimers(snapshot).some((t) => t.id === id);

function harness(
  options: {
    pending?: PendingAck[];
    idleMs?: number;
    ackBaseMs?: number;
    pacing?: Pacing;
    clock?: SimulatedClock;
  } = {},
) {
  const sent: { connections: string[]; seqs: number[] }[] = [];
  const batches: number[][] = [];
  const summaries: { count: number; firstSeq: number; lastSeq: number }[] = [];
  const presence: string[] = [];
  const redeliveries: RedeliverInput[] = [];
  const machine = userMachine.provide({
    actions: {
      sendItems: (_, p) =>
        void sent.push({ connections: p.connections, seqs: p.items.map((l) => l.item.seq) }),
      sendBatch: (_, p) => void batches.push(p.items.map((l) => l.item.seq)),
      sendSummary: (_, { count, firstSeq, lastSeq }) =>
        void summaries.push({ count, firstSeq, lastSeq }),
      announcePresence: (_, p) => void presence.push(p.status),
    },
    actors: {
      redeliver: fromPromise<RedeliverOutput, RedeliverInput>(({ input }) => {
        redeliveries.push(input);
        const dropped = input.due.filter((p) => p.attempts >= p.limit).map((p) => p.seq);
        const resent = input.due.filter((p) => p.attempts < p.limit).map((p) => ({
          ...p,
          attempts: p.attempts + 1,
          nextAt: Date.now() + redeliveryDelay(p, p.attempts + 1, options.ackBaseMs ?? 40),
        }));
        return Promise.resolve({ resent, dropped });
      }),
    },
  });
  const actor = createActor(machine, {
    input: {
      userId: "camille",
      pending: options.pending ?? [],
      ackBaseMs: options.ackBaseMs ?? 40,
      idleMs: options.idleMs ?? 60_000,
      ...(options.pacing ? { pacing: options.pacing } : {}),
    },
    ...(options.clock ? { clock: options.clock } : {}),
  });
  actor.start();
  const deliver = (...items: LiveItem[]) => actor.send({ type: "items.deliver", items });
  return { actor, deliver, sent, batches, summaries, presence, redeliveries };
}

Deno.test("backoff delays grow exponentially, linearly or not at all", () => {
  assert.deepEqual([0, 1, 2, 3].map((a) => redeliveryDelay({ backoff: "EXPONENTIAL" }, a, 100)), [
    100,
    200,
    400,
    800,
  ]);
  assert.deepEqual([0, 1, 2].map((a) => redeliveryDelay({ backoff: "LINEAR" }, a, 100)), [
    100,
    200,
    300,
  ]);
  assert.deepEqual([0, 1, 2].map((a) => redeliveryDelay({ backoff: "FIXED" }, a, 100)), [
    100,
    100,
    100,
  ]);
});

Deno.test("user actor presence follows all of the user's connections", () => {
  const { actor, presence } = harness();
  assert.deepEqual(presence, ["offline"]);
  actor.send({ type: "conn.open", connId: "a" });
  actor.send({ type: "conn.open", connId: "b" });
  assert.equal(actor.getSnapshot().matches("online"), true);
  actor.send({ type: "conn.status", connId: "a", status: "away" });
  assert.equal(actor.getSnapshot().matches("online"), true, "b is still online");
  actor.send({ type: "conn.status", connId: "b", status: "away" });
  assert.equal(actor.getSnapshot().matches("away"), true);
  actor.send({ type: "conn.close", connId: "a" });
  actor.send({ type: "conn.close", connId: "b" });
  assert.equal(actor.getSnapshot().matches("offline"), true);
  assert.deepEqual(presence, ["offline", "online", "away", "offline"]);
  actor.stop();
});

Deno.test("user actor sends a batch of new items to every connection in one step and tracks those that need an ack", () => {
  const { actor, deliver, sent } = harness();
  actor.send({ type: "conn.open", connId: "a" });
  actor.send({ type: "conn.open", connId: "b" });
  deliver(live(1), live(2, { ack: true }));
  assert.deepEqual(sent, [{ connections: ["a", "b"], seqs: [1, 2] }]);
  const { context } = actor.getSnapshot();
  assert.deepEqual(Object.keys(context.pending), ["2"]);
  assert.ok(context.pending[2].nextAt! > Date.now() - 5);
  assert.equal(context.pushes.lastSeqSent, 2);
  assert.equal(context.pushes.pushed, 2);
  assert.equal(waitingOn(actor.getSnapshot(), "nextDue"), true);
  actor.stop();
});

/** A connected user whose LOW items are grouped for 100 ms, on a simulated clock. */
function lowGrouping() {
  const clock = new SimulatedClock();
  const h = harness({
    clock,
    pacing: { lowWindowMs: 100, pushBudget: 100, budgetWindowMs: 60_000 },
  });
  h.actor.send({ type: "conn.open", connId: "a" });
  return { clock, ...h };
}

Deno.test("user actor groups LOW items into one frame at the end of the window", () => {
  const { clock, actor, deliver, sent, batches } = lowGrouping();
  deliver(live(1, { pace: "low" }), live(2, { pace: "low" }));
  assert.deepEqual(sent.map((s) => s.seqs), [[]]);
  assert.equal(waitingOn(actor.getSnapshot(), "lowWindow"), true);
  const timer = userTimers(actor.getSnapshot()).find((t) => t.id === "lowWindow");
  assert.equal(timer?.dueAt, actor.getSnapshot().context.lowSince! + 100);
  deliver(live(3, { pace: "low" }));
  clock.increment(99);
  assert.deepEqual(batches, []);
  clock.increment(1);
  assert.deepEqual(batches, [[1, 2, 3]]);
  assert.equal(waitingOn(actor.getSnapshot(), "lowWindow"), false);
  assert.deepEqual(actor.getSnapshot().context.lowBuffer, []);
  actor.stop();
});

Deno.test("user actor sends the LOW group waiting before an item that goes out over it", () => {
  const { clock, actor, deliver, sent, batches } = lowGrouping();
  deliver(live(1, { pace: "low" }));
  clock.increment(40);
  // 3 goes out: the group waiting (1) goes first, the batch's LOW item before 3 (2) with
  // it, in order; 4, after it, starts the next group, with a window of its own.
  deliver(live(2, { pace: "low" }), live(3), live(4, { pace: "low" }));
  assert.deepEqual(batches, [[1]]);
  assert.deepEqual(sent.at(-1)!.seqs, [2, 3]);
  assert.deepEqual(actor.getSnapshot().context.lowBuffer.map((l) => l.item.seq), [4]);
  assert.equal(waitingOn(actor.getSnapshot(), "lowWindow"), true);
  clock.increment(60);
  assert.deepEqual(batches, [[1]], "the first group's timer ended with it");
  clock.increment(40);
  assert.deepEqual(batches, [[1], [4]]);
  assert.deepEqual(actor.getSnapshot().context.lowBuffer, []);
  actor.stop();
});

Deno.test("user actor folds pushes past its budget into one summary, critical items bypassing it", () => {
  const clock = new SimulatedClock();
  const { actor, deliver, sent, summaries } = harness({
    clock,
    pacing: { lowWindowMs: 0, pushBudget: 2, budgetWindowMs: 1000 },
  });
  actor.send({ type: "conn.open", connId: "a" });
  deliver(live(1), live(2), live(3), live(4, { pace: "critical" }));
  // The critical item goes out over the folded one: its summary goes first.
  assert.deepEqual(summaries, [{ count: 1, firstSeq: 3, lastSeq: 3 }]);
  deliver(live(5));
  assert.deepEqual(sent.map((s) => s.seqs), [[1, 2, 4], []]);
  assert.deepEqual(actor.getSnapshot().context.folded, { count: 2, firstSeq: 3, lastSeq: 5 });
  assert.equal(waitingOn(actor.getSnapshot(), "budgetWindow"), true);
  clock.increment(1000);
  assert.deepEqual(summaries, [
    { count: 1, firstSeq: 3, lastSeq: 3 },
    { count: 2, firstSeq: 3, lastSeq: 5 },
  ]);
  assert.equal(waitingOn(actor.getSnapshot(), "budgetWindow"), false);
  assert.equal(actor.getSnapshot().context.pushes.pushed, 0);
  // A new window: pushes go out again.
  deliver(live(6));
  assert.deepEqual(sent.at(-1)!.seqs, [6]);
  actor.stop();
});

Deno.test("user actor counts a batch that only moves its push counts in place, keeping its snapshot; any other batch makes a new one", () => {
  const { actor, deliver, sent } = harness({
    pacing: { lowWindowMs: 60_000, pushBudget: 4, budgetWindowMs: 60_000 },
  });
  actor.send({ type: "conn.open", connId: "a" });
  const start = Date.now();
  const before = actor.getSnapshot();
  deliver(live(1), live(2));
  deliver(live(3));
  assert.equal(actor.getSnapshot(), before, "the common step makes no new snapshot");
  assert.deepEqual(sent.map((s) => s.seqs), [[1, 2], [3]]);
  const { pushes } = actor.getSnapshot().context;
  assert.equal(pushes.lastSeqSent, 3);
  assert.equal(pushes.pushed, 3);
  assert.ok(pushes.budgetSince! >= start && pushes.budgetSince! <= Date.now());
  // An item waiting for an ack is tracked: a new snapshot.
  deliver(live(4, { ack: true }));
  const acked = actor.getSnapshot();
  assert.notEqual(acked, before);
  assert.deepEqual(Object.keys(acked.context.pending), ["4"]);
  assert.deepEqual(acked.context.pushes, {
    lastSeqSent: 4,
    pushed: 4,
    budgetSince: pushes.budgetSince,
  });
  // Past the budget, an item folds; a LOW one waits for its group.
  deliver(live(5));
  deliver(live(6, { pace: "low" }));
  const { context } = actor.getSnapshot();
  assert.deepEqual(context.folded, { count: 1, firstSeq: 5, lastSeq: 5 });
  assert.deepEqual(context.lowBuffer.map((l) => l.item.seq), [6]);
  assert.equal(context.pushes.lastSeqSent, 6);
  assert.equal(context.pushes.pushed, 4);
  assert.deepEqual(sent.map((s) => s.seqs), [[1, 2], [3], [4], [], []]);
  actor.stop();
});

Deno.test("user actor sends a batch that fits what is left of its budget whole, and counts no push while offline", () => {
  const clock = new SimulatedClock();
  const { actor, deliver, sent } = harness({
    clock,
    pacing: { lowWindowMs: 0, pushBudget: 3, budgetWindowMs: 1000 },
  });
  // Nobody connected: nothing counts against the budget.
  deliver(live(1), live(2), live(3), live(4));
  assert.equal(actor.getSnapshot().context.pushes.pushed, 0);
  actor.send({ type: "conn.open", connId: "a" });
  deliver(live(5), live(6));
  deliver(live(7));
  assert.equal(actor.getSnapshot().context.pushes.pushed, 3);
  // The budget is spent exactly: the next item folds, a critical one still goes out.
  deliver(live(8), live(9, { pace: "critical" }));
  assert.deepEqual(sent.slice(-3).map((s) => s.seqs), [[5, 6], [7], [9]]);
  assert.deepEqual(actor.getSnapshot().context.folded, { count: 1, firstSeq: 8, lastSeq: 8 });
  assert.equal(actor.getSnapshot().context.pushes.pushed, 4);
  actor.stop();
});

Deno.test("user actor redelivers an unacked item on its schedule until its limit", async () => {
  const { actor, deliver, redeliveries } = harness({ ackBaseMs: 30 });
  actor.send({ type: "conn.open", connId: "a" });
  deliver(live(1, { ack: true, limit: 2 }));
  await waitFor(actor, (s) => Object.keys(s.context.pending).length === 0, { timeout: 5000 });
  // Two redeliveries, then a third run that drops the item.
  assert.equal(redeliveries.length, 3);
  assert.deepEqual(redeliveries.map((r) => r.due[0].attempts), [0, 1, 2]);
  assert.equal(waitingOn(actor.getSnapshot(), "nextDue"), false);
  actor.stop();
});

Deno.test("user actor stops redelivering once the item is acked", async () => {
  const { actor, deliver, redeliveries } = harness({ ackBaseMs: 40 });
  actor.send({ type: "conn.open", connId: "a" });
  deliver(live(1, { ack: true, limit: 5 }));
  actor.send({ type: "ack.received", id: "e1" });
  // Barrier: an item delivered after it, on the same backoff, is redelivered; the acked one
  // would have been due first.
  deliver(live(2, { ack: true, limit: 5 }));
  await waitFor(actor, (s) => (s.context.pending[2]?.attempts ?? 0) >= 1, { timeout: 5000 });
  assert.deepEqual(redeliveries.flatMap((r) => r.due.map((p) => p.seq)), [2]);
  actor.stop();
});

Deno.test("user actor keeps pending items unscheduled while the user is offline", async () => {
  const { actor, redeliveries } = harness({
    ackBaseMs: 20,
    pending: [{ seq: 4, id: "e4", attempts: 1, limit: 5, backoff: "FIXED", nextAt: 0 }],
  });
  // Nobody to redeliver to: no redelivery timer at all.
  assert.equal(waitingOn(actor.getSnapshot(), "nextDue"), false);
  assert.equal(userTimers(actor.getSnapshot()).some((t) => t.id === "nextDue"), false);
  actor.send({ type: "conn.open", connId: "a" });
  assert.ok(actor.getSnapshot().context.pending[4].nextAt! >= Date.now() + 10);
  await waitFor(actor, (s) => s.context.pending[4].attempts >= 2, { timeout: 5000 });
  assert.equal(redeliveries.length, 1);
  actor.stop();
});

Deno.test("user actor passivates into its final state after being offline for its idle time", () => {
  const clock = new SimulatedClock();
  const { actor } = harness({ idleMs: 30_000, clock });
  actor.send({ type: "conn.open", connId: "a" });
  clock.increment(60_000);
  assert.equal(actor.getSnapshot().status, "active", "not while connected");
  actor.send({ type: "conn.close", connId: "a" });
  const idle = userTimers(actor.getSnapshot()).find((t) => t.id === "idle");
  assert.equal(idle?.dueAt, actor.getSnapshot().context.offlineSince! + 30_000);
  clock.increment(29_999);
  assert.equal(actor.getSnapshot().status, "active");
  clock.increment(1);
  assert.equal(actor.getSnapshot().status, "done");
});

Deno.test("user actor ends on user.stop, whatever its state", () => {
  let completed = false;
  const { actor, deliver } = harness();
  actor.subscribe({ complete: () => void (completed = true) });
  actor.send({ type: "conn.open", connId: "a" });
  deliver(live(1, { ack: true }));
  assert.equal(waitingOn(actor.getSnapshot(), "nextDue"), true);
  actor.send({ type: "user.stop" });
  assert.equal(actor.getSnapshot().status, "done");
  assert.equal(completed, true);
});

Deno.test("user actor timers come from its context: next redelivery, budget window, idle", () => {
  const { actor, deliver } = harness({
    ackBaseMs: 5000,
    pacing: { lowWindowMs: 0, pushBudget: 10, budgetWindowMs: 60_000 },
  });
  const offline = userTimers(actor.getSnapshot());
  assert.deepEqual(offline.map((t) => t.id), ["idle"]);
  actor.send({ type: "conn.open", connId: "a" });
  deliver(live(7, { ack: true }));
  const { context } = actor.getSnapshot();
  const timers = userTimers(actor.getSnapshot());
  assert.deepEqual(timers.map((t) => [t.id, t.dueAt]), [
    ["nextDue", context.pending[7].nextAt],
    ["budgetWindow", context.pushes.budgetSince! + 60_000],
  ]);
  assert.match(timers[0].event, /seq 7/);
  actor.stop();
});

Deno.test("user actor starts a new budget window lazily when the last one folded nothing", () => {
  // The machine stamps windows with the wall clock: simulated time moves it too.
  using time = simulatedTime();
  const { actor, deliver, sent, summaries } = harness({
    clock: time.clock,
    pacing: { lowWindowMs: 0, pushBudget: 2, budgetWindowMs: 30 },
  });
  actor.send({ type: "conn.open", connId: "a" });
  deliver(live(1), live(2));
  time.advance(40);
  assert.equal(waitingOn(actor.getSnapshot(), "budgetWindow"), false, "the window is over");
  // The next push opens a new window with a full budget; its fold gets a timer.
  deliver(live(3), live(4), live(5));
  assert.deepEqual(sent.map((s) => s.seqs), [[1, 2], [3, 4]]);
  assert.equal(waitingOn(actor.getSnapshot(), "budgetWindow"), true);
  time.advance(30);
  assert.equal(actor.getSnapshot().context.folded.count, 0);
  // One summary, the second window's: the first one, with nothing folded, had no timer.
  assert.deepEqual(summaries, [{ count: 1, firstSeq: 5, lastSeq: 5 }]);
  actor.stop();
});
