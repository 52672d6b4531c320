import assert from "node:assert/strict";
import { changeToEvents, type Outcome } from "../../src/ingest/change.ts";
import { parseRules, rulesByTable } from "../../src/ingest/rules.ts";
import { ACTIVITY_RULE, CHANGE } from "../_support/ingest.ts";

const base = ACTIVITY_RULE;
const rules = rulesByTable(parseRules(JSON.stringify({
  rules: [base, { ...base, type: "NOTIFICATION", audience: { type: "USER", column: "owner_id" } }],
})));

function entry(value: unknown): [string, string][] {
  return [["data", typeof value === "string" ? value : JSON.stringify(value)]];
}

function events(outcome: Outcome) {
  assert.equal(outcome.kind, "events", JSON.stringify(outcome));
  return outcome.kind === "events" ? outcome.events : [];
}

Deno.test("a Debezium update becomes one event per rule with only the allowed columns", async () => {
  const [realtime, notification] = events(
    await changeToEvents(entry(CHANGE), "1-0", rules),
  );
  assert.equal(realtime.rule, 0);
  assert.deepEqual(realtime.envelope.metadata.type, "REALTIME");
  assert.equal(realtime.envelope.metadata.operation, "update");
  assert.equal(realtime.envelope.metadata.collapse_key, "activity:42");
  assert.equal(realtime.envelope.metadata.timestamp, new Date(1772722800000).toISOString());
  assert.deepEqual(realtime.envelope.payload, {
    before: { id: 42, title: "Projet web — sprint 2", status: "DRAFT" },
    after: { id: 42, title: "Projet web — sprint 2", status: "PUBLISHED" },
  });
  assert.deepEqual(realtime.envelope.routing.audience, {
    type: "FORMATION",
    targets: ["licence-info"],
  });
  assert.equal(notification.envelope.metadata.type, "NOTIFICATION");
  assert.deepEqual(notification.envelope.routing.audience.targets, [
    "7b1d0c3e-2f4a-4c55-9a61-0d6f1f3b2a10",
  ]);
  assert.notEqual(realtime.envelope.metadata.id, notification.envelope.metadata.id);
  assert.ok(!JSON.stringify(realtime.envelope.payload).includes("owner_id"));
});

Deno.test("the event id is derived from the change's position, table, key and rule", async () => {
  const first = events(await changeToEvents(entry(CHANGE), "1-0", rules));
  // The same change written again under another entry id: the same ids.
  const again = events(await changeToEvents(entry(CHANGE), "7-0", rules));
  assert.deepEqual(
    again.map((e) => e.envelope.metadata.id),
    first.map((e) => e.envelope.metadata.id),
  );
  const later = { ...CHANGE, source: { ...CHANGE.source, lsn: 33554500 } };
  const other = events(await changeToEvents(entry(later), "1-0", rules));
  assert.notEqual(other[0].envelope.metadata.id, first[0].envelope.metadata.id);
});

Deno.test("a derived id begins with the change's commit time, so later changes sort later", async () => {
  const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const idOf = async (change: unknown) =>
    events(await changeToEvents(entry(change), "1-0", rules))[0].envelope.metadata.id;
  const first = await idOf(CHANGE);
  assert.match(first, V7);
  // The first 48 bits are the commit time in milliseconds (version 7 layout).
  const ms = parseInt(first.replaceAll("-", "").slice(0, 12), 16);
  assert.equal(ms, CHANGE.source.ts_ms);
  // Debezium's own processing time is not part of it: a change read again keeps its id.
  assert.equal(await idOf({ ...CHANGE, ts_ms: CHANGE.ts_ms + 60_000 }), first);
  // Committed later (with a smaller log position even): a greater id.
  const later = {
    ...CHANGE,
    source: { ...CHANGE.source, ts_ms: CHANGE.source.ts_ms + 1, lsn: 1 },
  };
  assert.ok(await idOf(later) > first);
  // Without a commit time: a version 8 id, from the hash alone.
  const { ts_ms: _, ...untimed } = CHANGE.source;
  assert.match(
    await idOf({ ...CHANGE, source: untimed }),
    /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  );
  // A time a version 7 id cannot hold is left out too.
  assert.match(
    await idOf({ ...CHANGE, source: { ...CHANGE.source, ts_ms: -5 } }),
    /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-/,
  );
});

Deno.test("Debezium operations map to create, update and delete", async () => {
  const ops = new Map([["c", "create"], ["u", "update"], ["d", "delete"], ["r", "create"]]);
  for (const [op, operation] of ops) {
    const value = {
      ...CHANGE,
      op,
      before: op === "c" || op === "r" ? null : CHANGE.before,
      after: op === "d" ? null : CHANGE.after,
    };
    const [event] = events(await changeToEvents(entry(value), "1-0", rules));
    assert.equal(event.envelope.metadata.operation, operation, op);
    assert.equal("before" in event.envelope.payload, op === "u" || op === "d", op);
    assert.equal("after" in event.envelope.payload, op !== "d", op);
  }
});

Deno.test("tombstones, heartbeats and truncates are skipped", async () => {
  assert.deepEqual(await changeToEvents([["data", ""]], "1-0", rules), {
    kind: "skip",
    reason: "tombstone",
  });
  assert.deepEqual(await changeToEvents(entry("null"), "1-0", rules), {
    kind: "skip",
    reason: "tombstone",
  });
  assert.deepEqual(await changeToEvents(entry({ ts_ms: 1 }), "1-0", rules), {
    kind: "skip",
    reason: "heartbeat",
  });
  const truncate = { ...CHANGE, op: "t", before: null, after: null };
  assert.deepEqual(await changeToEvents(entry(truncate), "1-0", rules), {
    kind: "skip",
    reason: "operation",
  });
});

Deno.test("entries that cannot become events say why", async () => {
  const reason = async (fields: [string, string][]) => {
    const outcome = await changeToEvents(fields, "1-0", rules);
    return outcome.kind === "dead" ? outcome.reason : outcome.kind;
  };
  assert.equal(await reason([["data", "{not json"]]), "invalid_json");
  assert.equal(await reason([["payload", "{}"]]), "no_data");
  const skill = { ...CHANGE, source: { ...CHANGE.source, table: "skill" } };
  assert.equal(await reason(entry(skill)), "no_rule");
  const { id: _, ...noId } = CHANGE.after;
  assert.equal(await reason(entry({ ...CHANGE, after: noId })), "missing_key");
  const nobody = { ...CHANGE.after, program_id: null, owner_id: "" };
  assert.equal(await reason(entry({ ...CHANGE, after: nobody })), "empty_audience");
  const big = { ...CHANGE.after, title: "x".repeat(70_000) };
  assert.equal(await reason(entry({ ...CHANGE, after: big })), "payload_too_large");
  assert.equal(await reason(entry({ ...CHANGE, op: 3 })), "invalid_change");
});

Deno.test("a change with the converter's schema part is read from its payload", async () => {
  const wrapped = { schema: { type: "struct" }, payload: CHANGE };
  assert.equal(events(await changeToEvents(entry(wrapped), "1-0", rules)).length, 2);
});

Deno.test("columns named constructor or __proto__ are columns like any other", async () => {
  const byOddColumns = rulesByTable(parseRules(JSON.stringify({
    rules: [{
      ...base,
      key: ["constructor"],
      columns: ["constructor", "__proto__", "title"],
      topic: "activity.{constructor}",
      collapse_key: undefined,
    }],
  })));
  // As JSON.parse reads it: both are own fields of the row.
  const data = JSON.stringify({ ...CHANGE, before: null, op: "c" }).replace(
    '"after":{',
    '"after":{"constructor":"c-7","__proto__":{"x":1},',
  );
  const [event] = events(await changeToEvents(entry(data), "1-0", byOddColumns));
  assert.equal(event.envelope.metadata.topic, "activity.c-7");
  const after = event.envelope.payload.after as Record<string, unknown>;
  assert.deepEqual(Object.entries(after), [
    ["constructor", "c-7"],
    ["__proto__", { x: 1 }],
    ["title", CHANGE.after.title],
  ]);
  assert.equal(Object.getPrototypeOf(after), Object.prototype);
});
