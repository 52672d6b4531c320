/** Stream epochs: new epochs, and the rule that decides `welcome.recovered`. */

import assert from "node:assert/strict";
import { isRecovered, newEpoch } from "../../src/realtime/epochs.ts";

Deno.test("a new epoch is a short URL-safe string, different each time", () => {
  const epochs = new Set(Array.from({ length: 100 }, newEpoch));
  assert.equal(epochs.size, 100);
  for (const epoch of epochs) assert.match(epoch, /^[A-Za-z0-9_-]{16}$/);
});

Deno.test("a resume is recovered only from a position of the epoch and a complete replay", () => {
  const epoch = "e1";
  assert.equal(isRecovered({ epoch, complete: false }), false, "fresh connection");
  assert.equal(isRecovered({ epoch, complete: true }), false, "fresh connection");
  assert.equal(isRecovered({ after: 3, clientEpoch: epoch, epoch, complete: true }), true);
  assert.equal(
    isRecovered({ after: 3, clientEpoch: epoch, epoch, complete: false }),
    false,
    "same epoch, incomplete",
  );
  // Another epoch's ephemeral items are gone with its memory; so may be those published
  // while the user had no head. Stored items are replayed all the same.
  assert.equal(isRecovered({ after: 3, clientEpoch: "e0", epoch, complete: true }), false);
  assert.equal(isRecovered({ after: 3, epoch, complete: true }), false, "no client epoch");
});
