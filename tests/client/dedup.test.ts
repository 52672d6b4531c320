import assert from "node:assert/strict";
import { createSeenIds } from "../../src/client/dedup.ts";

Deno.test("seen ids answer true for an id seen before", () => {
  const seen = createSeenIds(10);
  assert.equal(seen.check("a"), false);
  assert.equal(seen.check("b"), false);
  assert.equal(seen.check("a"), true);
  assert.equal(seen.size(), 2);
});

Deno.test("seen ids forget the oldest ids beyond their capacity", () => {
  const seen = createSeenIds(3);
  for (const id of ["a", "b", "c", "d"]) seen.check(id);
  assert.equal(seen.size(), 3);
  assert.equal(seen.check("d"), true);
  assert.equal(seen.check("a"), false, "the oldest id was forgotten");
});
