import assert from "node:assert/strict";
import { createActor, fromPromise, waitFor } from "xstate";
import {
  mailerMachine,
  type MailerSettings,
  type MailPeekOutput,
  type MailRunOutput,
} from "../../actors/mailer.machine.ts";
import { type SimulatedTime, simulatedTime } from "../_support/sim_time.ts";

const run = (patch: Partial<MailRunOutput> = {}): MailRunOutput => ({
  sent: 0,
  skipped: 0,
  deferred: 0,
  failed: 0,
  deadLettered: 0,
  transportDown: false,
  depth: 0,
  ...patch,
});

function harness(
  time: SimulatedTime,
  script: (call: number, limit: number) => MailRunOutput,
  options: { peek?: MailPeekOutput; settings?: Partial<MailerSettings> } = {},
) {
  const calls: { at: number; limit: number }[] = [];
  const started = Date.now();
  const machine = mailerMachine.provide({
    actors: {
      peek: fromPromise<MailPeekOutput>(() => Promise.resolve(options.peek ?? { depth: 0 })),
      runDue: fromPromise<MailRunOutput, { limit: number }>(({ input }) => {
        calls.push({ at: Date.now() - started, limit: input.limit });
        return Promise.resolve(script(calls.length, input.limit));
      }),
    },
  });
  const actor = createActor(machine, {
    clock: time.clock,
    input: {
      transport: "smtp",
      settings: {
        batchSize: 50,
        breakerThreshold: 2,
        breakerCooldownMs: 150,
        pollMs: 10_000,
        ...options.settings,
      },
    },
  });
  actor.start();
  /** Resolves once the actor is in `state` (its effects are promises: they settle later). */
  const settled = (state: string, check: () => boolean = () => true) =>
    waitFor(actor, (s) => s.value === state && check(), { timeout: 2000 });
  return { actor, calls, settled };
}

Deno.test("mailer actor sleeps until the earliest task is due, and wakes sooner for a new one", async () => {
  using time = simulatedTime();
  const { actor, calls, settled } = harness(time, () => run(), {
    peek: { depth: 1, nextDueAt: Date.now() + 5000 },
  });
  try {
    await settled("waiting");
    time.advance(50);
    assert.equal(calls.length, 0);
    assert.equal(actor.getSnapshot().value, "waiting");
    actor.send({ type: "mail.queued", dueAt: Date.now() + 30 });
    time.advance(29);
    assert.equal(calls.length, 0);
    time.advance(1);
    await settled("waiting", () => calls.length === 1);
    assert.equal(calls.length, 1);
    assert.equal(actor.getSnapshot().context.queueDepth, 0);
  } finally {
    actor.stop();
  }
});

Deno.test("mailer actor keeps running while a full batch leaves tasks due", async () => {
  using time = simulatedTime();
  let due = 3;
  const { actor, calls, settled } = harness(time, () => {
    due--;
    return run({ sent: 50, depth: due * 50, ...(due > 0 ? { nextDueAt: Date.now() - 1 } : {}) });
  }, { peek: { depth: 150, nextDueAt: Date.now() } });
  try {
    // No time passes: each run starts at once while tasks are due.
    for (let run = 0; run < 4; run++) {
      await settled("waiting", () => calls.length === Math.min(run, 3));
      time.advance(0);
    }
    assert.equal(calls.length, 3);
    assert.equal(actor.getSnapshot().context.totals.sent, 150);
    assert.equal(actor.getSnapshot().value, "waiting");
  } finally {
    actor.stop();
  }
});

Deno.test("mailer actor opens its breaker while the transport is down, probes, then closes", async () => {
  using time = simulatedTime();
  let down = true;
  const { actor, calls, settled } = harness(
    time,
    () =>
      down
        ? run({
          failed: 1,
          transportDown: true,
          depth: 5,
          nextDueAt: Date.now(),
          lastError: "ECONNREFUSED",
        })
        : run({ sent: 1, depth: 0 }),
    { peek: { depth: 5, nextDueAt: Date.now() } },
  );
  try {
    await settled("waiting");
    time.advance(0);
    await settled("waiting", () => calls.length === 1);
    time.advance(0);
    await settled("open");
    // Two runs in a row found the transport down: the breaker is open, nothing runs.
    time.advance(149);
    assert.equal(calls.length, 2);
    const open = actor.getSnapshot();
    assert.equal(open.value, "open");
    assert.deepEqual(
      { state: open.context.breaker.state, failures: open.context.breaker.failures },
      { state: "open", failures: 2 },
    );
    assert.equal(open.context.lastError, "ECONNREFUSED");

    // The cooldown ends: one probe with a single task, still down, so open again.
    time.advance(1);
    assert.equal(calls.length, 3);
    assert(calls[2].at >= 150, `probed after ${calls[2].at} ms`);
    assert.equal(calls[2].limit, 1);
    await settled("open");

    down = false;
    time.advance(150);
    await settled("waiting");
    const closed = actor.getSnapshot();
    assert.equal(closed.value, "waiting");
    assert.deepEqual(closed.context.breaker, { state: "closed", failures: 0 });
    assert.equal(closed.context.totals.sent, 1);
  } finally {
    actor.stop();
  }
});
