import assert from "node:assert/strict";
import * as v from "valibot";
import { userId, uuidv7 } from "../../bench/_ids.ts";
import { idsNote } from "../../bench/_report.ts";
import { EnvelopeSchema } from "../../src/schemas/envelope.ts";
import { fixtureEvents } from "../_support/directory.ts";

Deno.test("the bench's event ids are version 7 UUIDs that relais takes and that sort by time", async () => {
  const at = Date.parse("2026-11-30T12:00:00.000Z");
  const id = uuidv7(at);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(parseInt(id.replaceAll("-", "").slice(0, 12), 16), at);
  // A later millisecond sorts after, whatever the random bits.
  for (let i = 0; i < 50; i++) assert.ok(uuidv7(at + 1) > uuidv7(at));
  // Ids of one millisecond differ.
  assert.equal(new Set(Array.from({ length: 1000 }, () => uuidv7(at))).size, 1000);
  // The platform's events have the same layout; one of them with this id is still valid.
  const [event] = Object.values(await fixtureEvents());
  const metadata = event.metadata as Record<string, unknown>;
  assert.match(String(metadata.id), /^[0-9a-f]{8}-[0-9a-f]{4}-7/);
  assert.ok(v.safeParse(EnvelopeSchema, { ...event, metadata: { ...metadata, id } }).success);
});

Deno.test("the latency section says which ids the events carry and what the store makes of them", () => {
  const probe = {
    sequential: 1500,
    concurrent: 3000,
    adjacentMutations: 72_000,
    scatteredMutations: 16_000,
    eventRecords: { ordered: 31_000, random: 5_200 },
  };
  const note = idsNote(probe);
  assert.match(note, /time-ordered ids \(UUID version 7\)/);
  assert.match(note, /31,000\/s on this disk, and at 5,200\/s when their ids are random/);
  // A run from before the event probe: the ids only.
  const { eventRecords: _, ...older } = probe;
  assert.doesNotMatch(idsNote(older), /\/s/);
  assert.doesNotMatch(idsNote(undefined), /\/s/);
});

Deno.test("the bench's users have random-looking UUID ids, distinct, the same in every process", () => {
  const ids = Array.from({ length: 100_000 }, (_, i) => userId("fan", i));
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids.slice(0, 100)) {
    assert.match(id, /^fan-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
  assert.equal(userId("fan", 42), ids[42]);
  assert.ok(userId("lat", 42).startsWith("lat-"), "the group names its users");
  // Users listed by number are in no key order, as a real audience of UUIDs.
  const first = ids.slice(0, 1000);
  const inOrder = first.filter((id, i) => i > 0 && first[i - 1] < id).length;
  assert.ok(inOrder > 400 && inOrder < 600, `${inOrder} of 999 pairs in key order`);
});
