import assert from "node:assert/strict";
import { createActor, fromPromise, waitFor } from "xstate";
import {
  retentionMachine,
  type RetentionSettings,
  type SweepStepInput,
  type SweepStepOutput,
} from "../../actors/retention.machine.ts";
import { retentionTimers } from "../../src/retention/retention_actor.ts";
import { RETENTION_KINDS } from "../../src/store/store.ts";
import { type SimulatedTime, simulatedTime } from "../_support/sim_time.ts";

const DAY = 86_400_000;

const SETTINGS: RetentionSettings = {
  periods: { items: 90 * DAY, events: 30 * DAY, dead_letters: 30 * DAY, audit: 365 * DAY },
  order: RETENTION_KINDS,
  sweepMs: 3_600_000,
  firstRoundMs: 30_000,
  batchSize: 200,
  pauseMs: 50,
  retryMs: 60_000,
};

interface Call extends SweepStepInput {
  at: number;
}

function harness(
  time: SimulatedTime,
  script: (call: Call, n: number) => SweepStepOutput,
  settings: Partial<RetentionSettings> = {},
) {
  const calls: Call[] = [];
  const errors: unknown[] = [];
  const started = Date.now();
  const machine = retentionMachine.provide({
    actors: {
      sweep: fromPromise<SweepStepOutput, SweepStepInput>(({ input }) => {
        const call = { ...input, at: Date.now() - started };
        calls.push(call);
        try {
          return Promise.resolve(script(call, calls.length));
        } catch (error) {
          return Promise.reject(error);
        }
      }),
    },
    actions: { reportError: (_, { error }) => void errors.push(error) },
  });
  const actor = createActor(machine, {
    clock: time.clock,
    input: { settings: { ...SETTINGS, ...settings } },
  });
  actor.start();
  /** Resolves once the actor is in `state` and `check` holds (its step is a promise). */
  const settled = (state: unknown, check: () => boolean = () => true) =>
    waitFor(actor, (s) => s.matches(state as never) && check(), { timeout: 2000 });
  return { actor, calls, errors, started, settled };
}

Deno.test("retention actor sweeps each kind in bounded steps with pauses, then sleeps until the next round", async () => {
  using time = simulatedTime();
  // Items need three steps, dead letters two, the other kinds one.
  const removals = new Map([["items", [200, 200, 17]], ["dead_letters", [200, 3]]]);
  const seen = new Map<string, number>();
  const { actor, calls, settled, started } = harness(time, (call) => {
    const n = seen.get(call.kind) ?? 0;
    seen.set(call.kind, n + 1);
    const plan = removals.get(call.kind) ?? [0];
    const more = n + 1 < plan.length;
    return { removed: plan[n], more, ...(more ? { cursor: `${call.kind}:${n}` } : {}) };
  });
  try {
    assert.equal(actor.getSnapshot().value, "waiting");
    assert.equal(actor.getSnapshot().context.nextRoundAt, started + 30_000);
    time.advance(29_999);
    assert.equal(calls.length, 0, "the first round waits its delay");
    time.advance(1);
    await settled({ sweeping: "pausing" }, () => calls.length === 1);
    // Each later step comes one pause after the previous one.
    for (let step = 2; step <= 7; step++) {
      time.advance(49);
      assert.equal(calls.length, step - 1, "no step before the pause ends");
      time.advance(1);
      await waitFor(actor, (s) => calls.length === step && !s.matches({ sweeping: "step" }), {
        timeout: 2000,
      });
    }
    await settled("waiting");
    assert.deepEqual(
      calls.map((c) => [c.kind, c.cursor ?? null, c.limit]),
      [
        ["items", null, 200],
        ["items", "items:0", 200],
        ["items", "items:1", 200],
        ["events", null, 200],
        ["dead_letters", null, 200],
        ["dead_letters", "dead_letters:0", 200],
        ["audit", null, 200],
      ],
    );
    assert.deepEqual(calls.map((c) => c.retentionMs), [
      90 * DAY,
      90 * DAY,
      90 * DAY,
      30 * DAY,
      30 * DAY,
      30 * DAY,
      365 * DAY,
    ]);
    const { context } = actor.getSnapshot();
    const endedAt = started + 30_000 + 6 * 50;
    assert.deepEqual(context.lastRound, {
      startedAt: started + 30_000,
      endedAt,
      steps: 7,
      swept: { items: 417, events: 0, dead_letters: 203, audit: 0 },
    });
    assert.equal(context.rounds, 1);
    assert.equal(context.round, undefined);
    assert.equal(context.nextRoundAt, endedAt + 3_600_000);
    assert.deepEqual(retentionTimers(actor.getSnapshot()), [
      { id: "untilNextRound", event: "retention.round", dueAt: endedAt + 3_600_000 },
    ]);

    seen.clear();
    time.advance(3_599_999);
    assert.equal(calls.length, 7, "the next round waits the sweep interval");
    time.advance(1);
    await waitFor(actor, () => calls.length === 8, { timeout: 2000 });
    assert.equal(calls[7].kind, "items");
    assert.equal(calls[7].cursor, undefined, "a new round starts from the beginning");
  } finally {
    actor.stop();
  }
});

Deno.test("retention actor skips the kinds whose retention is off, and idles when all are", async () => {
  using time = simulatedTime();
  const { actor, calls, settled } = harness(time, () => ({ removed: 1, more: false }), {
    periods: { dead_letters: DAY },
    firstRoundMs: 0,
  });
  try {
    time.advance(0);
    await settled("waiting", () => actor.getSnapshot().context.rounds === 1);
    assert.deepEqual(calls.map((c) => c.kind), ["dead_letters"]);
    assert.deepEqual(actor.getSnapshot().context.totals, { dead_letters: 1 });
  } finally {
    actor.stop();
  }

  const off = harness(time, () => ({ removed: 0, more: false }), { periods: {} });
  try {
    assert.equal(off.actor.getSnapshot().value, "off");
    assert.deepEqual(retentionTimers(off.actor.getSnapshot()), []);
    time.advance(10 * 3_600_000);
    off.actor.send({ type: "retention.run" });
    assert.equal(off.calls.length, 0);
  } finally {
    off.actor.stop();
  }
});

Deno.test("retention actor reports a failed step and tries the round again later", async () => {
  using time = simulatedTime();
  const { actor, calls, errors, settled } = harness(time, (_call, n) => {
    if (n === 2) throw new Error("Store unavailable");
    return { removed: 5, more: false };
  }, { periods: { items: DAY, audit: DAY }, firstRoundMs: 0 });
  try {
    time.advance(0);
    await settled({ sweeping: "pausing" });
    time.advance(50);
    await settled("waiting", () => errors.length === 1);
    assert.equal(actor.getSnapshot().context.lastError, "Error: Store unavailable");
    assert.equal(actor.getSnapshot().context.rounds, 0);
    assert.equal(actor.getSnapshot().context.nextRoundAt, Date.now() + 60_000);
    time.advance(59_999);
    assert.equal(calls.length, 2);
    time.advance(1);
    await settled({ sweeping: "pausing" }, () => calls.length === 3);
    time.advance(50);
    await settled("waiting", () => actor.getSnapshot().context.rounds === 1);
    assert.deepEqual(calls.map((c) => c.kind), ["items", "audit", "items", "audit"]);
    assert.deepEqual(actor.getSnapshot().context.totals, { items: 10, audit: 5 });
  } finally {
    actor.stop();
  }
});

Deno.test("retention actor starts a round at once when asked", async () => {
  using time = simulatedTime();
  const { actor, calls, settled } = harness(time, () => ({ removed: 0, more: false }), {
    periods: { audit: DAY },
  });
  try {
    assert.equal(actor.getSnapshot().value, "waiting");
    actor.send({ type: "retention.run" });
    await settled("waiting", () => actor.getSnapshot().context.rounds === 1);
    assert.equal(calls.length, 1);
  } finally {
    actor.stop();
  }
});
