import assert from "node:assert/strict";
import { createActor, fromPromise } from "xstate";
import {
  backoffDelay,
  type LiveItem,
  type RedeliverInput,
  type RedeliverOutput,
  userMachine,
} from "../../actors/user.machine.ts";
import type { PendingAck } from "../../src/store/store.ts";

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

function live(seq: number, options: { ack?: boolean; limit?: number } = {}): LiveItem {
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
  };
}

function harness(options: { pending?: PendingAck[]; idleMs?: number; ackBaseMs?: number } = {}) {
  const sent: { connections: string[]; seq: number }[] = [];
  const presence: string[] = [];
  const redeliveries: RedeliverInput[] = [];
  let passivated = 0;
  const machine = userMachine.provide({
    actions: {
      sendFrame: (_, p) => void sent.push({ connections: p.connections, seq: p.live.item.seq }),
      announcePresence: (_, p) => void presence.push(p.status),
      passivate: () => void passivated++,
    },
    actors: {
      redeliver: fromPromise<RedeliverOutput, RedeliverInput>(({ input }) => {
        redeliveries.push(input);
        const dropped = input.due.filter((p) => p.attempts >= p.limit).map((p) => p.seq);
        const resent = input.due.filter((p) => p.attempts < p.limit).map((p) => ({
          ...p,
          attempts: p.attempts + 1,
          nextAt: Date.now() + backoffDelay(p, p.attempts + 1, options.ackBaseMs ?? 40),
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
    },
  });
  actor.start();
  return { actor, sent, presence, redeliveries, passivated: () => passivated };
}

Deno.test("backoff delays grow exponentially, linearly or not at all", () => {
  assert.deepEqual([0, 1, 2, 3].map((a) => backoffDelay({ backoff: "EXPONENTIAL" }, a, 100)), [
    100,
    200,
    400,
    800,
  ]);
  assert.deepEqual([0, 1, 2].map((a) => backoffDelay({ backoff: "LINEAR" }, a, 100)), [
    100,
    200,
    300,
  ]);
  assert.deepEqual([0, 1, 2].map((a) => backoffDelay({ backoff: "FIXED" }, a, 100)), [
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
  assert.equal(actor.getSnapshot().matches({ presence: "online" }), true);
  actor.send({ type: "conn.status", connId: "a", status: "away" });
  assert.equal(actor.getSnapshot().matches({ presence: "online" }), true, "b is still online");
  actor.send({ type: "conn.status", connId: "b", status: "away" });
  assert.equal(actor.getSnapshot().matches({ presence: "away" }), true);
  actor.send({ type: "conn.close", connId: "a" });
  actor.send({ type: "conn.close", connId: "b" });
  assert.equal(actor.getSnapshot().matches({ presence: "offline" }), true);
  assert.deepEqual(presence, ["offline", "online", "away", "offline"]);
  actor.stop();
});

Deno.test("user actor sends a new item to every connection and tracks it when it needs an ack", () => {
  const { actor, sent } = harness();
  actor.send({ type: "conn.open", connId: "a" });
  actor.send({ type: "conn.open", connId: "b" });
  actor.send({ type: "item.deliver", live: live(1) });
  actor.send({ type: "item.deliver", live: live(2, { ack: true }) });
  assert.deepEqual(sent, [{ connections: ["a", "b"], seq: 1 }, {
    connections: ["a", "b"],
    seq: 2,
  }]);
  const { context } = actor.getSnapshot();
  assert.deepEqual(Object.keys(context.pending), ["2"]);
  assert.ok(context.pending[2].nextAt! > Date.now() - 5);
  assert.equal(context.lastSeqSent, 2);
  assert.equal(actor.getSnapshot().matches({ delivery: "waiting" }), true);
  actor.stop();
});

Deno.test("user actor redelivers an unacked item on its schedule until its limit", async () => {
  const { actor, redeliveries } = harness({ ackBaseMs: 30 });
  actor.send({ type: "conn.open", connId: "a" });
  actor.send({ type: "item.deliver", live: live(1, { ack: true, limit: 2 }) });
  for (let i = 0; i < 100 && Object.keys(actor.getSnapshot().context.pending).length > 0; i++) {
    await wait(30);
  }
  // Two redeliveries, then a third run that drops the item.
  assert.equal(redeliveries.length, 3);
  assert.deepEqual(redeliveries.map((r) => r.due[0].attempts), [0, 1, 2]);
  assert.deepEqual(actor.getSnapshot().context.pending, {});
  assert.equal(actor.getSnapshot().matches({ delivery: "idle" }), true);
  actor.stop();
});

Deno.test("user actor stops redelivering once the item is acked", async () => {
  const { actor, redeliveries } = harness({ ackBaseMs: 40 });
  actor.send({ type: "conn.open", connId: "a" });
  actor.send({ type: "item.deliver", live: live(1, { ack: true, limit: 5 }) });
  actor.send({ type: "ack.received", id: "e1" });
  await wait(150);
  assert.equal(redeliveries.length, 0);
  assert.equal(actor.getSnapshot().matches({ delivery: "idle" }), true);
  actor.stop();
});

Deno.test("user actor keeps pending items unscheduled while the user is offline", async () => {
  const { actor, redeliveries } = harness({
    ackBaseMs: 20,
    pending: [{ seq: 4, id: "e4", attempts: 1, limit: 5, backoff: "FIXED", nextAt: 0 }],
  });
  await wait(80);
  assert.equal(redeliveries.length, 0, "nobody to redeliver to");
  actor.send({ type: "conn.open", connId: "a" });
  assert.ok(actor.getSnapshot().context.pending[4].nextAt! >= Date.now() + 10);
  await wait(80);
  assert.ok(redeliveries.length >= 1);
  actor.stop();
});

Deno.test("user actor asks to be passivated after being offline for its idle time", async () => {
  const { actor, passivated } = harness({ idleMs: 30 });
  actor.send({ type: "conn.open", connId: "a" });
  await wait(60);
  assert.equal(passivated(), 0, "not while connected");
  actor.send({ type: "conn.close", connId: "a" });
  await wait(80);
  assert.equal(passivated(), 1);
  actor.stop();
});
