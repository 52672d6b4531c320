import assert from "node:assert/strict";
import { createMemoryStore } from "../../src/store/memory_store.ts";
import type { FanoutBatch, MailTask } from "../../src/store/store.ts";
import { makeEnvelope, result } from "../_support/store.ts";
import { storeContract } from "./_contract.ts";
import { publish } from "./contract/_harness.ts";

/** A mail task sink that keeps what it is given. */
function collectMail() {
  const tasks = new Map<string, { dueAt: number; task: MailTask }>();
  const erased: string[] = [];
  return {
    tasks,
    erased,
    sink: {
      add: (dueAt: number, task: MailTask) => void tasks.set(task.id, { dueAt, task }),
      eraseUser: (user: string) => void erased.push(user),
    },
  };
}

// Small bounds, so that the contract crosses several fan-out batches.
const ATOMIC_TARGETS = 120;
const FANOUT_BATCH = 100;

storeContract({
  name: "memory store",
  atomicTargets: ATOMIC_TARGETS,
  open() {
    const mail = collectMail();
    const store = createMemoryStore({
      recentWindowMs: 60_000,
      mail: mail.sink,
      atomicTargets: ATOMIC_TARGETS,
      fanoutBatch: FANOUT_BATCH,
    });
    return Promise.resolve({
      store,
      mailTasks: () => Promise.resolve([...mail.tasks.keys()]),
      close: () => store.close(),
    });
  },
});

Deno.test("memory store queues each mail task with its due time and item", async () => {
  const mail = collectMail();
  const store = createMemoryStore({ recentWindowMs: 60_000, mail: mail.sink });
  const e = makeEnvelope();
  await store.publishAtomic(e, ["a"], result(e, 1), {
    plan: (users) => Promise.resolve(users.map(() => ({ quiet: false, mailAt: 42 }))),
  });
  const id = `${e.metadata.id}:a`;
  assert.deepEqual(mail.tasks.get(id), {
    dueAt: 42,
    task: { kind: "item", id, user: "a", event: e.metadata.id, seq: 1, attempts: 0 },
  });
  await store.eraseUser("a");
  assert.deepEqual(mail.erased, ["a"], "queued digest items are forgotten with the user");
});

Deno.test("memory store writes a fan-out job in batches of its bound", async () => {
  const store = createMemoryStore({ recentWindowMs: 60_000, atomicTargets: 10, fanoutBatch: 4 });
  const users = Array.from({ length: 11 }, (_, i) => `u${i}`);
  const e = makeEnvelope();
  assert.equal(await store.publishAtomic(e, users, result(e, 11)), undefined);
  await store.createEvent(e, users, result(e, 11));
  const batches: FanoutBatch[] = [];
  await store.runFanout(e.metadata.id, (batch) => void batches.push(batch));
  assert.deepEqual(batches.map((b) => b.items.length), [4, 4, 3]);
  assert.deepEqual(batches.map((b) => b.event.fanningOut), [true, true, false]);
});

Deno.test("memory store lets two runners of one job write each target once", async () => {
  const store = createMemoryStore({ recentWindowMs: 60_000, fanoutBatch: 10 });
  const users = Array.from({ length: 95 }, (_, i) => `u${i}`);
  const e = makeEnvelope();
  await store.createEvent(e, users, result(e, users.length));
  const written: string[] = [];
  const onBatch = (batch: FanoutBatch) => void written.push(...batch.items.map((i) => i.user));
  await Promise.all([
    store.runFanout(e.metadata.id, onBatch),
    store.runFanout(e.metadata.id, onBatch, {
      plan: (targets) => Promise.resolve(targets.map(() => ({ quiet: false }))),
    }),
  ]);
  assert.deepEqual(written.sort(), [...users].sort());
  for (const user of users) assert.equal(await store.lastSeq(user), 1);
});

Deno.test("memory store forgets items that are not durable once past the window", async () => {
  let now = Date.now();
  const store = createMemoryStore({ recentWindowMs: 0, now: () => now });
  const realtime = await publish(store, ["u"], makeEnvelope("REALTIME"));
  const windowed = { limit: 10, windowMs: 1e9 };
  assert.deepEqual((await store.readStream("u", 0, { ...windowed, now })).items.map((i) => i.id), [
    realtime.metadata.id,
  ]);
  // The next write, past the window and its margin, drops the older realtime item.
  now += 120_000;
  const durable = await publish(store, ["u"]);
  const read = await store.readStream("u", 0, { ...windowed, now });
  assert.deepEqual(read.items.map((i) => i.id), [durable.metadata.id]);
  assert.equal(read.items[0].at, now, "items are stamped by the store's clock");
  assert.equal(read.complete, true, "a forgotten item leaves a gap, not a loss");
});

Deno.test("memory store refuses a ping once closed", async () => {
  const store = createMemoryStore({ recentWindowMs: 60_000 });
  store.close();
  await assert.rejects(store.ping(), /closed/);
});
