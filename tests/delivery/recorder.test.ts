/** The delivery recorder: batched records, and those of items sent before they were written. */

import assert from "node:assert/strict";
import { createDeliveryRecorder } from "../../src/delivery/recorder.ts";
import type { DeliveredEntry } from "../../src/store/store.ts";

/** A recorder over a store that keeps what it is asked to mark. */
function setup(stored?: (user: string) => Promise<void> | undefined) {
  const marked: DeliveredEntry[][] = [];
  const recorder = createDeliveryRecorder(
    { markDelivered: (entries) => Promise.resolve(void marked.push(entries)) },
    {
      intervalMs: 60_000,
      onError: (error) => {
        throw error;
      },
      ...(stored ? { stored } : {}),
    },
  );
  return { recorder, marked };
}

Deno.test("a delivery sent before its record was written waits for it, then marks it where it landed", async () => {
  let land!: () => void;
  const held = new Promise<void>((resolve) => land = resolve);
  let landed = false;
  const { recorder, marked } = setup((user) => user === "camille" && !landed ? held : undefined);
  recorder.add("e1", "camille");
  recorder.add("e1", "dmitri");
  const flushed = recorder.flush();
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(marked.length, 0, "nothing is marked while a record is not written");
  // The batch lands: where it wrote camille's record is told, then her item is stored.
  recorder.written("e1", "camille", { seq: 7, version: "00000000000000010000" });
  landed = true;
  land();
  await flushed;
  assert.deepEqual(marked, [[
    { id: "e1", user: "camille", written: { seq: 7, version: "00000000000000010000" } },
    { id: "e1", user: "dmitri" },
  ]]);
});

Deno.test("a record's place serves one delivery of its event and user only", async () => {
  const { recorder, marked } = setup();
  recorder.written("e1", "camille", { seq: 7, version: "00000000000000010000" });
  recorder.add("e2", "camille");
  recorder.add("e1", "camille", true);
  await recorder.flush();
  recorder.add("e1", "camille");
  await recorder.flush();
  recorder.add("e1", "camille");
  await recorder.flush();
  assert.deepEqual(marked, [
    [{ id: "e2", user: "camille" }, { id: "e1", user: "camille", ephemeral: true }],
    [{ id: "e1", user: "camille", written: { seq: 7, version: "00000000000000010000" } }],
    [{ id: "e1", user: "camille" }],
  ]);
});

Deno.test("a fan-out batch claims a delivery not written yet: it is not marked here, and a given-back one is", async () => {
  const { recorder, marked } = setup();
  recorder.add("e1", "camille");
  // A second connection's copy is the same delivery.
  recorder.add("e1", "camille");
  recorder.add("e1", "dmitri");
  recorder.add("e1", "elise", true);
  recorder.add("e1", "farid", false, { seq: 3, version: "00000000000000010000" });
  assert.equal(recorder.claim("e1", "camille"), true);
  assert.equal(recorder.claim("e1", "camille"), false, "claimed once");
  assert.equal(recorder.claim("e1", "elise"), false, "an ephemeral delivery has no record");
  assert.equal(recorder.claim("e1", "farid"), false, "a record already written is marked");
  assert.equal(recorder.claim("e2", "dmitri"), false, "not delivered");
  assert.equal(recorder.claim("e1", "dmitri"), true);
  // dmitri's batch was not written: his delivery is recorded as any other.
  recorder.release("e1", "dmitri");
  await recorder.flush();
  assert.deepEqual(marked, [[
    { id: "e1", user: "elise", ephemeral: true },
    { id: "e1", user: "farid", written: { seq: 3, version: "00000000000000010000" } },
    { id: "e1", user: "dmitri" },
  ]]);
  // Collected for a flush that has not reached it yet, a delivery can still be claimed.
  recorder.add("e1", "gaspard");
  const flushed = recorder.flush();
  assert.equal(recorder.claim("e1", "gaspard"), true, "still waiting for the flush's turn");
  await flushed;
  // Once written here, it can no longer be.
  recorder.add("e1", "iris");
  await recorder.flush();
  assert.equal(recorder.claim("e1", "iris"), false, "marked already");
  let land!: () => void;
  const { recorder: waiting, marked: later } = setup((user) =>
    user === "hugo" ? new Promise<void>((resolve) => land = resolve) : undefined
  );
  waiting.add("e1", "hugo");
  const pending = waiting.flush();
  await new Promise((resolve) => setTimeout(resolve, 10));
  // Waiting for its item to be stored, it may still be claimed by the batch storing it.
  assert.equal(waiting.claim("e1", "hugo"), true);
  land();
  await pending;
  assert.deepEqual(later, []);
  assert.deepEqual(
    marked.at(-1),
    [{ id: "e1", user: "iris" }],
    "gaspard's claim left nothing to mark",
  );
  assert.equal(marked.length, 2);
});
