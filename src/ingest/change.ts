/**
 * One Debezium change event becomes envelopes, by the rules of its table: a pure step,
 * with no Redis and no publisher, so every case is tested on its own.
 *
 * The value is Debezium's PostgreSQL connector with the JSON converter (with or without
 * its schema part): `before`, `after`, `source.{schema, table, lsn, txId, ts_ms}`, `op`.
 * Each rule of the table gives one envelope whose id is derived from the change's position
 * (`source.lsn`, `source.txId`), the table, the row's key and the rule's index, behind the
 * change's commit time (`source.ts_ms`) when it has one: reading the same change again
 * gives the same ids, and the publisher replays a known id instead of delivering it twice.
 */

import * as v from "valibot";
import { type Envelope, EnvelopeSchema, MAX_PAYLOAD_BYTES } from "../schemas/envelope.ts";
import { ownKeysRecord } from "../schemas/record.ts";
import { MAX_JSON_DEPTH } from "../body.ts";
import type { IngestRule } from "./rules.ts";
import { utf8Length } from "../utf8.ts";
import { MAX_UUID_MS, uuidOf } from "../uuid.ts";
import { jsonDepth } from "../validate.ts";

/** Why an entry went to the dead-letter stream. */
export type DeadReason =
  | "invalid_json"
  | "no_data"
  | "invalid_change"
  | "no_rule"
  | "missing_key"
  | "empty_audience"
  | "payload_too_large"
  | "invalid_envelope"
  | "publish_refused"
  | "publish_failed";

/** Every {@linkcode DeadReason}, for metrics that show each from the start. */
export const DEAD_REASONS: readonly DeadReason[] = [
  "invalid_json",
  "no_data",
  "invalid_change",
  "no_rule",
  "missing_key",
  "empty_audience",
  "payload_too_large",
  "invalid_envelope",
  "publish_refused",
  "publish_failed",
];

/** Why an entry was acked with nothing to publish. */
export type SkipReason = "tombstone" | "heartbeat" | "operation";

/** An envelope made by one rule. */
export interface RuleEvent {
  /** The rule's index in the rules file. */
  rule: number;
  /** The changed row (table and key), whose changes keep their order. */
  row: string;
  envelope: Envelope;
}

/** What one entry comes to. */
export type Outcome =
  | { kind: "skip"; reason: SkipReason }
  | { kind: "dead"; reason: DeadReason; detail: string }
  | {
    kind: "events";
    events: RuleEvent[];
    /** The first rule that could not make its event, if any: the entry is a dead letter too. */
    failed?: { reason: DeadReason; detail: string };
  };

/** The rules of each table, with their index in the file. */
export type RulesByTable = ReadonlyMap<string, readonly { index: number; rule: IngestRule }[]>;

const OPERATIONS = new Map(
  [
    ["c", "create"],
    ["u", "update"],
    ["d", "delete"],
    ["r", "create"],
  ] as const,
);

// A column named `constructor` or `__proto__` is a column like any other (`v.record` drops it).
const Row = v.nullish(ownKeysRecord(v.string(), v.unknown()));
const ChangeSchema = v.object({
  op: v.string(),
  before: Row,
  after: Row,
  source: v.object({
    schema: v.string(),
    table: v.string(),
    lsn: v.optional(v.union([v.number(), v.string()])),
    txId: v.optional(v.nullable(v.union([v.number(), v.string()]))),
    ts_ms: v.optional(v.number()),
  }),
  ts_ms: v.optional(v.number()),
});
type Change = v.InferOutput<typeof ChangeSchema>;
type Values = Record<string, unknown>;

const encoder = new TextEncoder();

const isObject = (x: unknown): x is Values =>
  typeof x === "object" && x !== null && !Array.isArray(x);

/**
 * A UUID derived from `parts`: the same parts give the same id in every process. Given the
 * change's commit time `atMs`, its first 48 bits are that time in milliseconds (version 7
 * layout, the rest SHA-256 bits), so ids of changes committed one after the other sort
 * together, as the platform's own ids do: the store keeps events by id, and ids at random
 * places cost its writer about five times as much. Without a time, version 8 (custom,
 * SHA-256 bits only).
 */
export async function derivedId(parts: readonly unknown[], atMs?: number): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(JSON.stringify(parts)));
  const timed = atMs !== undefined && Number.isFinite(atMs) && atMs >= 0 && atMs <= MAX_UUID_MS;
  return uuidOf(new Uint8Array(digest), timed ? { version: 7, ms: atMs } : { version: 8 });
}

/** A column's value as a target or template text: strings and finite numbers only. */
function text(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "bigint" || typeof value === "boolean") return String(value);
  return undefined;
}

function valueOf(row: Values, column: string): unknown {
  return Object.hasOwn(row, column) ? row[column] : undefined;
}

/** The allowed columns of a row; a column the row lacks is left out. */
function allowed(row: Values, columns: readonly string[]): Values {
  return Object.fromEntries(
    columns.filter((c) => Object.hasOwn(row, c)).map((c) => [c, row[c]]),
  );
}

function render(template: string, row: Values): string {
  return template.replace(/\{([^{}]*)\}/g, (_, column: string) => text(valueOf(row, column)) ?? "");
}

function targetsOf(rule: IngestRule, row: Values): string[] {
  if (rule.audience.targets) return rule.audience.targets;
  if (!rule.audience.column) return [];
  const value = valueOf(row, rule.audience.column);
  const list = Array.isArray(value) ? value : [value];
  const targets = list.map(text).filter((t): t is string => t !== undefined && t.trim() !== "");
  return [...new Set(targets)];
}

/** The change's JSON value, unwrapped from the converter's `{schema, payload}` when present. */
function unwrap(value: unknown): unknown {
  if (isObject(value) && "schema" in value && isObject(value.payload)) return value.payload;
  return value;
}

/** Makes the event of one rule, or says why it cannot. */
async function eventOf(
  change: Change,
  index: number,
  rule: IngestRule,
  position: readonly unknown[],
): Promise<RuleEvent | { reason: DeadReason; detail: string }> {
  const row = (change.op === "d" ? change.before : change.after) ?? undefined;
  const where = `rule ${index} ("${rule.table}")`;
  if (!row) {
    return { reason: "invalid_change", detail: `${where}: the change has no row` };
  }
  const key: unknown[] = [];
  for (const column of rule.key) {
    const value = valueOf(row, column);
    if (value === undefined || value === null) {
      return { reason: "missing_key", detail: `${where}: key column "${column}" is missing` };
    }
    key.push(value);
  }
  const targets = targetsOf(rule, row);
  if (rule.audience.type !== "ALL" && targets.length === 0) {
    const from = rule.audience.column ? `column "${rule.audience.column}"` : "targets";
    return { reason: "empty_audience", detail: `${where}: ${from} names nobody` };
  }
  const payload: Values = {};
  if (change.before && change.op !== "c" && change.op !== "r") {
    payload.before = allowed(change.before, rule.columns);
  }
  if (change.after && change.op !== "d") payload.after = allowed(change.after, rule.columns);
  const bytes = utf8Length(JSON.stringify(payload));
  if (bytes > MAX_PAYLOAD_BYTES) {
    return {
      reason: "payload_too_large",
      detail: `${where}: ${bytes} bytes of payload, at most ${MAX_PAYLOAD_BYTES}`,
    };
  }
  const at = change.source.ts_ms ?? change.ts_ms;
  const raw = {
    metadata: {
      id: await derivedId([...position, rule.table, key, index], change.source.ts_ms),
      type: rule.type,
      emitter: rule.emitter,
      source: rule.source,
      topic: render(rule.topic, row),
      operation: OPERATIONS.get(change.op as "c"),
      ...(rule.priority ? { priority: rule.priority } : {}),
      ...(at !== undefined && Number.isFinite(at) && Math.abs(at) < 8.64e15
        ? { timestamp: new Date(at).toISOString() }
        : {}),
      ...(rule.collapse_key ? { collapse_key: render(rule.collapse_key, row) } : {}),
    },
    payload,
    routing: {
      audience: {
        type: rule.audience.type,
        targets,
        ...(rule.audience.within ? { within: rule.audience.within } : {}),
      },
    },
  };
  const result = v.safeParse(EnvelopeSchema, raw);
  if (!result.success) {
    const issue = result.issues[0];
    return {
      reason: "invalid_envelope",
      detail: `${where}: "${v.getDotPath(issue) ?? "$"}": ${issue.message}`,
    };
  }
  return { rule: index, row: JSON.stringify([rule.table, key]), envelope: result.output };
}

/**
 * What the stream entry `fields` (its field/value pairs; `entryId` its id) comes to by
 * `rules`: events to publish, a skip (tombstone, heartbeat, an operation no rule takes) or
 * a dead letter with its reason.
 */
export async function changeToEvents(
  fields: readonly (readonly [string, string])[],
  entryId: string,
  rules: RulesByTable,
): Promise<Outcome> {
  const data = fields.find(([name]) => name === "data");
  if (!data) return { kind: "dead", reason: "no_data", detail: 'The entry has no "data" field' };
  if (data[1].trim() === "") return { kind: "skip", reason: "tombstone" };
  // Refused before any recursive code sees it, as `POST /v1/events` refuses such a body:
  // the event would otherwise fail in the store on each of its attempts.
  if (jsonDepth(data[1], MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    return {
      kind: "dead",
      reason: "invalid_json",
      detail: `The change nests deeper than ${MAX_JSON_DEPTH} levels`,
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data[1]);
  } catch (error) {
    return { kind: "dead", reason: "invalid_json", detail: (error as Error).message.slice(0, 200) };
  }
  if (parsed === null) return { kind: "skip", reason: "tombstone" };
  const value = unwrap(parsed);
  if (isObject(value) && !("op" in value) && !("before" in value) && !("after" in value)) {
    return { kind: "skip", reason: "heartbeat" };
  }
  const result = v.safeParse(ChangeSchema, value);
  if (!result.success) {
    const issue = result.issues[0];
    return {
      kind: "dead",
      reason: "invalid_change",
      detail: `"${v.getDotPath(issue) ?? "$"}": ${issue.message}`,
    };
  }
  const change = result.output;
  if (!OPERATIONS.has(change.op as "c")) return { kind: "skip", reason: "operation" };
  const table = `${change.source.schema}.${change.source.table}`;
  const matching = (rules.get(table) ?? []).filter(({ rule }) =>
    !rule.ops || rule.ops.includes(change.op as "c")
  );
  if (!rules.has(table)) {
    return {
      kind: "dead",
      reason: "no_rule",
      detail: `No rule for table "${table.slice(0, 200)}"`,
    };
  }
  if (matching.length === 0) return { kind: "skip", reason: "operation" };
  // Without a log position, the entry's own id stands for the change.
  const position = change.source.lsn === undefined
    ? [null, null, entryId]
    : [String(change.source.lsn), change.source.txId ?? null, null];
  const events: RuleEvent[] = [];
  let failed: { reason: DeadReason; detail: string } | undefined;
  for (const { index, rule } of matching) {
    const made = await eventOf(change, index, rule, position);
    if ("envelope" in made) events.push(made);
    else failed ??= made;
  }
  if (events.length === 0 && failed) return { kind: "dead", ...failed };
  return { kind: "events", events, ...(failed ? { failed } : {}) };
}
