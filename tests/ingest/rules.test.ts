import assert from "node:assert/strict";
import { IngestRulesError, parseRules } from "../../src/ingest/rules.ts";
import { ACTIVITY_RULE } from "../_support/ingest.ts";

const activity = ACTIVITY_RULE;

function rejects(rules: unknown, expected: RegExp) {
  assert.throws(
    () => parseRules(JSON.stringify(rules), "rules.json"),
    (error: unknown) => {
      assert.ok(error instanceof IngestRulesError, String(error));
      assert.match(error.message, expected);
      return true;
    },
  );
}

Deno.test("ingest rules read the platform example with its defaults", async () => {
  const text = await Deno.readTextFile(
    new URL("../../docs/ingest-rules.example.json", import.meta.url),
  );
  const rules = parseRules(text);
  assert.equal(rules.length, 2);
  assert.equal(rules[0].table, "public.activity");
  assert.equal(rules[0].type, "REALTIME");
  assert.equal(rules[0].emitter, "ingest");
  assert.equal(rules[1].type, "NOTIFICATION");
});

Deno.test("an ingest rule error names the rule's index, its table and the field", () => {
  rejects(
    { rules: [activity, { ...activity, table: "public.skill", audience: { type: "GROUP" } }] },
    /^Invalid ingest rules "rules\.json": rule 1 \("public\.skill"\): "audience": expected either "column" or "targets"/,
  );
  rejects(
    { rules: [{ ...activity, audience: { type: "TEAM", column: "x" } }] },
    /rule 0 \("public\.activity"\): "audience\.type": expected one of USER/,
  );
  rejects(
    { rules: [{ ...activity, key: [] }] },
    /rule 0 \("public\.activity"\): "key": expected at least one key column/,
  );
  rejects(
    { rules: [{ ...activity, table: "activity" }] },
    /rule 0 \("activity"\): "table": expected "schema\.table"/,
  );
  rejects({ rules: [{ ...activity, type: "MESSAGE" }] }, /rule 0 \("public\.activity"\): "type"/);
  rejects({ rules: [{ ...activity, colums: ["id"] }] }, /rule 0 \("public\.activity"\): "colums"/);
  rejects({ rules: [{ ...activity, table: 3 }] }, /rule 0: "table"/);
});

Deno.test("an ingest rule's templates may only name key or allowed columns", () => {
  rejects(
    { rules: [{ ...activity, collapse_key: "activity:{owner_id}" }] },
    /rule 0 \("public\.activity"\): "collapse_key": expected placeholders naming key or allowed columns/,
  );
  rejects(
    { rules: [{ ...activity, topic: "ACTIVITY_{program_id}" }] },
    /rule 0 \("public\.activity"\): "topic": expected placeholders naming key or allowed columns/,
  );
});

Deno.test("an ingest rules file that is not JSON or has no rules is refused", () => {
  assert.throws(() => parseRules("{", "r.json"), /Invalid ingest rules "r\.json": not JSON/);
  rejects({ rules: [] }, /"rules": expected at least one rule/);
  rejects({}, /"rules"/);
});
