import assert from "node:assert/strict";
import * as v from "valibot";
import { ownKeysRecord } from "../../src/schemas/record.ts";
import { EnvelopeSchema } from "../../src/schemas/envelope.ts";

const Schema = ownKeysRecord(v.pipe(v.string(), v.maxLength(20)), v.number());

Deno.test("a record keeps keys named __proto__, constructor and prototype as own data", () => {
  const input = JSON.parse('{"__proto__": 1, "constructor": 2, "prototype": 3, "toString": 4}');
  const output = v.parse(Schema, input);
  assert.deepEqual(Object.keys(output).sort(), [
    "__proto__",
    "constructor",
    "prototype",
    "toString",
  ]);
  assert.equal(Object.getPrototypeOf(output), Object.prototype, "the prototype is intact");
  assert.equal(Object.getOwnPropertyDescriptor(output, "__proto__")?.value, 1);
  assert.equal(output["constructor"], 2);
  assert.equal(
    JSON.stringify(output),
    '{"toString":4,"__proto__":1,"constructor":2,"prototype":3}',
  );
  assert.equal(Schema["~standard"].validate(input) instanceof Promise, false);
});

Deno.test("a record validates the keys it used to drop and names them in the path", () => {
  const result = v.safeParse(Schema, JSON.parse('{"ok": 1, "constructor": "two", "__proto__": 3}'));
  assert.equal(result.success, false);
  assert.deepEqual(result.issues?.map((i) => v.getDotPath(i)), ["constructor"]);
  // An array is not read as an object of its indexes.
  assert.equal(v.safeParse(Schema, ["a"]).success, false);
  assert.equal(v.safeParse(Schema, []).success, false);
  assert.equal(v.safeParse(Schema, "x").success, false);
});

Deno.test("an envelope payload keeps a field named constructor or __proto__", () => {
  const envelope = v.parse(EnvelopeSchema, {
    metadata: {
      id: crypto.randomUUID(),
      type: "REALTIME",
      emitter: "portfolio-api",
      source: "constructor",
      topic: "__proto__",
    },
    payload: JSON.parse('{"__proto__": {"x": 1}, "constructor": "kept", "title": "t"}'),
    routing: { audience: { type: "USER", targets: ["constructor"] } },
  });
  assert.deepEqual(
    JSON.parse(JSON.stringify(envelope.payload)),
    JSON.parse(
      '{"title": "t", "__proto__": {"x": 1}, "constructor": "kept"}',
    ),
  );
  assert.equal(Object.getPrototypeOf(envelope.payload), Object.prototype);
});
