/** Stream epochs: the per-process port and the rule that decides `welcome.recovered`. */

import assert from "node:assert/strict";
import { isRecovered, newEpoch, processEpochs } from "../../src/realtime/epochs.ts";

Deno.test("a new epoch is a short URL-safe string, different each time", () => {
  const epochs = new Set(Array.from({ length: 100 }, newEpoch));
  assert.equal(epochs.size, 100);
  for (const epoch of epochs) assert.match(epoch, /^[A-Za-z0-9_-]{16}$/);
});

Deno.test("a process has one epoch for every user, and refuses a malformed one", () => {
  const epochs = processEpochs();
  assert.equal(epochs.epochOf("camille"), epochs.epochOf("yanis"));
  assert.equal(processEpochs("e1").epochOf("camille"), "e1");
  assert.throws(() => processEpochs("a:b"), /Invalid stream epoch "a:b"/);
});

Deno.test("a resume is recovered only with a position and a complete replay", () => {
  const epoch = "e1";
  assert.equal(isRecovered({ epoch, complete: false }), false, "fresh connection");
  assert.equal(isRecovered({ epoch, complete: true }), false, "fresh connection");
  assert.equal(isRecovered({ after: 3, epoch, complete: false }), false, "incomplete replay");
  assert.equal(isRecovered({ after: 3, epoch, complete: true }), true, "no client epoch");
  assert.equal(isRecovered({ after: 3, clientEpoch: epoch, epoch, complete: true }), true);
  assert.equal(
    isRecovered({ after: 3, clientEpoch: epoch, epoch, complete: false }),
    false,
    "same epoch, incomplete",
  );
  // Every item is in the store today: a replay from another epoch is as complete.
  assert.equal(isRecovered({ after: 3, clientEpoch: "e0", epoch, complete: true }), true);
  assert.equal(isRecovered({ after: 3, clientEpoch: "e0", epoch, complete: false }), false);
});
