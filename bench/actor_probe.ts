/**
 * What one actor step costs on this machine, for the report's bounds: every item reaches a
 * user through their actor (the design's rule), so a fan-out costs at least one XState step
 * per recipient on top of what a bare server spends.
 *
 * Two machines, each as 10,000 actors sharing systems of 32 (as relais's user actors do),
 * stepped by `items.deliver` events of one item: XState's smallest machine that takes an
 * item (one state, one action, one `assign`), and relais's user machine with one
 * connection (its effects replaced by counters). Prints the median µs per step of each as
 * JSON, with the heap each idle actor of the smallest machine holds (the least one actor per
 * connected user costs) and the bytes each machine's step allocates (the garbage a fan-out's
 * collections sweep, per recipient). Run by `bench/run.ts` in a child process of its own:
 * `deno run --v8-flags=--expose-gc bench/actor_probe.ts`, and on Node from its bundle
 * (`node --expose-gc dist/bench/actor_probe.mjs`): it uses no API of one runtime alone.
 */

import process from "node:process";
import { type AnyActorRef, assign, createActor, fromCallback, setup } from "xstate";
import { type Pacing, userMachine } from "../actors/user.machine.ts";

/** Actors stepped per round. */
const ACTORS = 10_000;
/** Rounds measured; the median is kept. */
const ROUNDS = 15;
/** Events per actor per round. */
const STEPS = 4;
/** Pacing as the bench runs relais: the default windows, the push budget out of the way. */
const PACING: Pacing = { lowWindowMs: 2000, pushBudget: 100_000, budgetWindowMs: 10_000 };

/** XState's smallest machine that takes an item: one action and one `assign`. */
const smallestMachine = setup({
  types: {
    context: {} as { taken: number },
    events: {} as { type: "items.deliver"; items: unknown[] },
  },
  actions: { send: (_, _items: unknown[]) => {} },
}).createMachine({
  context: { taken: 0 },
  on: {
    "items.deliver": {
      actions: [
        { type: "send", params: ({ event }) => event.items },
        assign({ taken: ({ context }) => context.taken + 1 }),
      ],
    },
  },
});

/** Hosts sharing one XState system among 32 children, as relais's user actors do. */
function hosts() {
  let host: AnyActorRef | undefined;
  let hosted = 0;
  return () => {
    if (!host || hosted >= 32) {
      host = createActor(fromCallback(() => {})).start();
      hosted = 0;
    }
    hosted++;
    return host;
  };
}

/** Median µs per step of `actors`, each sent `items.deliver` events of one new item. */
function measure(actors: AnyActorRef[]): number {
  const frame = `{"type":"event","seq":0,"envelope":${
    JSON.stringify({ payload: "x".repeat(160) })
  }}`;
  const perStep: number[] = [];
  let seq = 0;
  for (let round = 0; round < ROUNDS + 2; round++) {
    const started = performance.now();
    for (let k = 0; k < STEPS; k++) {
      seq++;
      const live = {
        item: { seq, id: "probe", type: "REALTIME", durable: false, ack: false, at: Date.now() },
        frame,
        acceptedAt: Date.now(),
        pace: "normal",
      };
      for (const actor of actors) actor.send({ type: "items.deliver", items: [live] });
    }
    // The first two rounds warm the code up.
    if (round >= 2) perStep.push(((performance.now() - started) * 1000) / (STEPS * actors.length));
  }
  perStep.sort((a, b) => a - b);
  return Math.round(perStep[Math.floor(perStep.length / 2)] * 100) / 100;
}

/** Actors stepped between two readings of the heap when counting what a step allocates. */
const ALLOC_CHUNK = 100;
/** Chunks counted; the median is kept. */
const ALLOC_CHUNKS = 41;

/**
 * Median bytes one step of `actors` allocates, or `undefined` without `--expose-gc`. Each
 * chunk of steps starts on an empty young generation (after a full collection) and is small
 * enough (~0.5 MB) that no collection runs inside it, so the heap's growth is what it
 * allocated; a chunk whose heap shrank (a collection ran after all) is left out.
 */
function allocatedPerStep(actors: AnyActorRef[], seq: number): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return undefined;
  const frame = `{"type":"event","seq":0,"envelope":{}}`;
  const perStep: number[] = [];
  for (let chunk = 0; chunk < ALLOC_CHUNKS; chunk++) {
    const live = {
      item: { seq: ++seq, id: "probe", type: "REALTIME", durable: false, ack: false, at: 0 },
      frame,
      acceptedAt: 0,
      pace: "normal",
    };
    const from = (chunk * ALLOC_CHUNK) % actors.length;
    const some = actors.slice(from, from + ALLOC_CHUNK);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (const actor of some) actor.send({ type: "items.deliver", items: [live] });
    const grown = process.memoryUsage().heapUsed - before;
    if (grown > 0) perStep.push(grown / some.length);
  }
  if (perStep.length === 0) return undefined;
  perStep.sort((a, b) => a - b);
  return Math.round(perStep[Math.floor(perStep.length / 2)]);
}

/** The heap in use after a full garbage collection, or `undefined` without `--expose-gc`. */
function heapAfterGc(): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return undefined;
  gc();
  return process.memoryUsage().heapUsed;
}

/** Seqs of the items the allocation count sends: above any `measure` sent. */
const ALLOC_SEQ = 1_000_000;

/** µs per step of XState's smallest machine, the heap each of its actors holds idle, and
 * the bytes a step allocates. */
function smallest(): { micros: number; bytes?: number; allocated?: number } {
  const next = hosts();
  const before = heapAfterGc();
  const actors = Array.from(
    { length: ACTORS },
    (_, i) => createActor(smallestMachine, { parent: next(), id: `smallest:${i}` }).start(),
  );
  const after = heapAfterGc();
  const bytes = before === undefined || after === undefined
    ? undefined
    : Math.round((after - before) / ACTORS);
  const micros = measure(actors);
  const allocated = allocatedPerStep(actors, ALLOC_SEQ);
  return {
    micros,
    ...(bytes === undefined ? {} : { bytes }),
    ...(allocated === undefined ? {} : { allocated }),
  };
}

/** µs per step of relais's user machine, and the bytes a step allocates. */
function userStep(): { micros: number; allocated?: number } {
  const next = hosts();
  let sent = 0;
  const machine = userMachine.provide({
    actions: { sendItems: () => void sent++, announcePresence: () => {} },
  });
  const actors = Array.from({ length: ACTORS }, (_, i) => {
    const actor = createActor(machine, {
      parent: next(),
      id: `user:probe-${i}`,
      input: {
        userId: `probe-${i}`,
        pending: [],
        ackBaseMs: 30_000,
        idleMs: 3_600_000,
        pacing: PACING,
      },
    }).start();
    actor.send({ type: "conn.open", connId: `conn-${i}` });
    return actor;
  });
  const micros = measure(actors);
  const allocated = allocatedPerStep(actors, ALLOC_SEQ);
  if (sent === 0) throw new Error("The user machine sent nothing: the probe measured no step");
  for (const actor of actors) actor.send({ type: "user.stop" });
  return { micros, ...(allocated === undefined ? {} : { allocated }) };
}

const least = smallest();
const user = userStep();
console.log(JSON.stringify({
  smallestMicros: least.micros,
  userMicros: user.micros,
  ...(least.bytes === undefined ? {} : { smallestBytes: least.bytes }),
  ...(least.allocated === undefined ? {} : { smallestAllocBytes: least.allocated }),
  ...(user.allocated === undefined ? {} : { userAllocBytes: user.allocated }),
}));
