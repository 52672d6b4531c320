import assert from "node:assert/strict";
import { createActor, fromPromise } from "xstate";
import {
  mailerMachine,
  type MailerSettings,
  type MailPeekOutput,
  type MailRunOutput,
} from "../../actors/mailer.machine.ts";

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("Timed out");
    await wait(5);
  }
}

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
  return { actor, calls };
}

Deno.test("mailer actor sleeps until the earliest task is due, and wakes sooner for a new one", async () => {
  const { actor, calls } = harness(() => run(), {
    peek: { depth: 1, nextDueAt: Date.now() + 5000 },
  });
  try {
    await wait(50);
    assert.equal(calls.length, 0);
    assert.equal(actor.getSnapshot().value, "waiting");
    actor.send({ type: "mail.queued", dueAt: Date.now() + 30 });
    await wait(150);
    assert.equal(calls.length, 1);
    assert.equal(actor.getSnapshot().context.queueDepth, 0);
  } finally {
    actor.stop();
  }
});

Deno.test("mailer actor keeps running while a full batch leaves tasks due", async () => {
  let due = 3;
  const { actor, calls } = harness(() => {
    due--;
    return run({ sent: 50, depth: due * 50, ...(due > 0 ? { nextDueAt: Date.now() - 1 } : {}) });
  }, { peek: { depth: 150, nextDueAt: Date.now() } });
  try {
    await wait(100);
    assert.equal(calls.length, 3);
    assert.equal(actor.getSnapshot().context.totals.sent, 150);
    assert.equal(actor.getSnapshot().value, "waiting");
  } finally {
    actor.stop();
  }
});

Deno.test("mailer actor opens its breaker while the transport is down, probes, then closes", async () => {
  let down = true;
  const { actor, calls } = harness(
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
    await wait(60);
    // Two runs in a row found the transport down: the breaker is open, nothing runs.
    assert.equal(calls.length, 2);
    const open = actor.getSnapshot();
    assert.equal(open.value, "open");
    assert.deepEqual(
      { state: open.context.breaker.state, failures: open.context.breaker.failures },
      { state: "open", failures: 2 },
    );
    assert.equal(open.context.lastError, "ECONNREFUSED");

    // The cooldown ends: one probe with a single task, still down, so open again.
    await until(() => calls.length === 3);
    assert(calls[2].at >= 150, `probed after ${calls[2].at} ms`);
    assert.equal(calls[2].limit, 1);
    await until(() => actor.getSnapshot().value === "open");

    down = false;
    await until(() => actor.getSnapshot().value === "waiting");
    const closed = actor.getSnapshot();
    assert.equal(closed.value, "waiting");
    assert.deepEqual(closed.context.breaker, { state: "closed", failures: 0 });
    assert.equal(closed.context.totals.sent, 1);
  } finally {
    actor.stop();
  }
});
