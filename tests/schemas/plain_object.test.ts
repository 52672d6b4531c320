import assert from "node:assert/strict";
import * as v from "valibot";
import { DirectoryEntryInputSchema } from "../../src/directory/directory.ts";
import { PreferencesSchema } from "../../src/preferences/preferences.ts";
import { EnvelopeSchema } from "../../src/schemas/envelope.ts";
import { plainObject } from "../../src/schemas/plain_object.ts";

const ARRAY_ISSUE = "Invalid type: Expected Object but received Array";

/** The dot path and message of every issue of `input`, or null when it is accepted. */
function issuesOf(schema: v.GenericSchema, input: unknown) {
  const result = v.safeParse(schema, input);
  if (result.success) return null;
  return result.issues.map((i) => [v.getDotPath(i) ?? "$", i.message]);
}

function envelope(patch: { payload?: unknown; routing?: Record<string, unknown> } = {}) {
  return {
    metadata: {
      id: crypto.randomUUID(),
      type: "NOTIFICATION",
      emitter: "portfolio-api",
      source: "feedback",
      topic: "t",
    },
    payload: patch.payload ?? {},
    routing: { audience: { type: "USER", targets: ["ana"] }, ...patch.routing },
  };
}

Deno.test("an object schema wrapped as a plain object refuses an array as it refuses a string", () => {
  const Schema = plainObject(v.strictObject({ a: v.optional(v.number(), 1) }));

  assert.deepEqual(v.parse(Schema, {}), { a: 1 });
  assert.deepEqual(issuesOf(Schema, []), [["$", ARRAY_ISSUE]]);
  assert.deepEqual(issuesOf(Schema, "x"), [[
    "$",
    'Invalid type: Expected Object but received "x"',
  ]]);
  assert.equal(Schema.type, "strict_object", "the OpenAPI shape is the object's");
  assert.equal(
    (Schema["~standard"].validate([]) as v.OutputDataset<unknown, v.BaseIssue<unknown>>).issues?.[0]
      .message,
    ARRAY_ISSUE,
  );
});

Deno.test("an envelope refuses an array for its payload, retry policy, audience or within", () => {
  assert.deepEqual(issuesOf(EnvelopeSchema, envelope({ payload: ["a", "b"] })), [
    ["payload", ARRAY_ISSUE],
  ]);
  assert.deepEqual(issuesOf(EnvelopeSchema, envelope({ payload: [] })), [
    ["payload", ARRAY_ISSUE],
  ]);
  assert.deepEqual(issuesOf(EnvelopeSchema, envelope({ routing: { retry: [] } })), [
    ["routing.retry", ARRAY_ISSUE],
  ]);
  assert.deepEqual(issuesOf(EnvelopeSchema, envelope({ routing: { audience: [] } })), [
    ["routing.audience", ARRAY_ISSUE],
  ]);
  const within = { audience: { type: "ALL", within: [["s1"]] } };
  assert.deepEqual(issuesOf(EnvelopeSchema, envelope({ routing: within })), [
    ["routing.audience.within", ARRAY_ISSUE],
  ]);
  assert.deepEqual(issuesOf(EnvelopeSchema, []), [["$", ARRAY_ISSUE]]);
  assert.equal(issuesOf(EnvelopeSchema, envelope({ payload: { list: ["a"] } })), null);
});

Deno.test("preferences refuse an array for the whole, the sources, a source or quiet hours", () => {
  assert.deepEqual(issuesOf(PreferencesSchema, []), [["$", ARRAY_ISSUE]]);
  assert.deepEqual(issuesOf(PreferencesSchema, { sources: [{ channels: ["email"] }] }), [
    ["sources", ARRAY_ISSUE],
  ]);
  assert.deepEqual(issuesOf(PreferencesSchema, { sources: { feedback: [] } }), [
    ["sources.feedback", ARRAY_ISSUE],
  ]);
  assert.deepEqual(issuesOf(PreferencesSchema, { quiet_hours: ["22:00", "07:00"] }), [
    ["quiet_hours", ARRAY_ISSUE],
  ]);
  assert.equal(issuesOf(PreferencesSchema, { sources: { feedback: { channels: [] } } }), null);
});

Deno.test("a directory entry refuses an array for the whole entry", () => {
  assert.deepEqual(issuesOf(DirectoryEntryInputSchema, []), [["$", ARRAY_ISSUE]]);
  assert.equal(issuesOf(DirectoryEntryInputSchema, {}), null);
});
