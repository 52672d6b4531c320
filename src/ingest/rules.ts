/**
 * The ingest rules: how a change of one table becomes an envelope. They come from a JSON
 * file (`RELAIS_INGEST_RULES`) read once at start-up and validated here, so a bad rule
 * stops start-up with one line naming the rule (its index and table) and the field.
 *
 * ```json
 * { "rules": [ {
 *     "table": "public.activity", "type": "REALTIME",
 *     "source": "activities", "topic": "activity.changed",
 *     "key": ["id"],
 *     "audience": { "type": "FORMATION", "column": "program_id" },
 *     "columns": ["id", "title", "status"],
 *     "collapse_key": "activity:{id}"
 * } ] }
 * ```
 *
 * Templates (`topic`, `collapse_key`) name columns in `{column}` placeholders; only key
 * columns and allowed columns may be named, so a template never lets another column out.
 */

import * as v from "valibot";
import { AUDIENCE_TYPES, WITHIN_TYPES } from "../schemas/envelope.ts";

/** Debezium operations a rule can apply to. */
export const CHANGE_OPS = ["c", "u", "d", "r"] as const;

const PLACEHOLDER = /\{([^{}]*)\}/g;

const name = (max: number) =>
  v.pipe(v.string(), v.trim(), v.minLength(1, "expected a non-empty string"), v.maxLength(max));
const column = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z_][\w$]{0,62}$/, "expected a column name"),
);
const columns = v.pipe(
  v.array(column),
  v.check((list) => new Set(list).size === list.length, "expected each column once"),
);

/** The columns a template names in its `{column}` placeholders. */
export function placeholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]);
}

const template = (max: number) =>
  v.pipe(
    name(max),
    v.check(
      (t) => placeholders(t).every((p) => /^[A-Za-z_][\w$]{0,62}$/.test(p)),
      "expected {column} placeholders naming columns",
    ),
  );

const AudienceRuleSchema = v.pipe(
  v.strictObject({
    type: v.picklist(AUDIENCE_TYPES, `expected one of ${AUDIENCE_TYPES.join(", ")}`),
    /** The column whose value (a string, a number or an array of them) names the targets. */
    column: v.optional(column),
    /** Fixed targets. */
    targets: v.optional(v.pipe(v.array(name(200)), v.minLength(1), v.maxLength(1000))),
    within: v.optional(
      v.pipe(
        v.record(
          v.picklist(WITHIN_TYPES, `expected one of ${WITHIN_TYPES.join(", ")}`),
          v.pipe(v.array(name(200)), v.minLength(1)),
        ),
        v.check((w) => Object.keys(w).length > 0, "expected at least one dimension"),
      ),
    ),
  }),
  v.check(
    (a) =>
      a.type === "ALL"
        ? a.column === undefined && a.targets === undefined
        : (a.column === undefined) !== (a.targets === undefined),
    'expected either "column" or "targets" (neither for ALL)',
  ),
);

/** One rule as the file gives it. */
export const IngestRuleSchema = v.pipe(
  v.strictObject({
    /** Debezium's `source.schema` + "." + `source.table`. */
    table: v.pipe(v.string(), v.regex(/^[^.\s]+\.[^.\s]+$/, 'expected "schema.table"')),
    type: v.optional(
      v.picklist(
        ["REALTIME", "NOTIFICATION", "SYSTEM"],
        "expected REALTIME, NOTIFICATION or SYSTEM",
      ),
      "REALTIME",
    ),
    emitter: v.optional(name(200), "ingest"),
    source: name(100),
    topic: template(200),
    /** Operations the rule applies to (default all). */
    ops: v.optional(
      v.pipe(
        v.array(v.picklist(CHANGE_OPS, 'expected "c", "u", "d" or "r"')),
        v.minLength(1, "expected at least one operation"),
      ),
    ),
    key: v.pipe(columns, v.minLength(1, "expected at least one key column")),
    audience: AudienceRuleSchema,
    /** The only columns copied into `payload.before` and `payload.after`. */
    columns,
    collapse_key: v.optional(template(200)),
    priority: v.optional(v.picklist(["HIGH", "NORMAL", "LOW"], "expected HIGH, NORMAL or LOW")),
  }),
  v.forward(
    v.check(
      (r) => placeholders(r.topic).every((p) => r.key.includes(p) || r.columns.includes(p)),
      "expected placeholders naming key or allowed columns",
    ),
    ["topic"],
  ),
  v.forward(
    v.check(
      (r) =>
        r.collapse_key === undefined ||
        placeholders(r.collapse_key).every((p) => r.key.includes(p) || r.columns.includes(p)),
      "expected placeholders naming key or allowed columns",
    ),
    ["collapse_key"],
  ),
);

/** A validated rule. */
export type IngestRule = v.InferOutput<typeof IngestRuleSchema>;

/** The rules file. */
export const IngestRulesSchema = v.strictObject({
  rules: v.pipe(v.array(IngestRuleSchema), v.minLength(1, "expected at least one rule")),
});

/** A rules file that cannot be used; the message names the rule and the field. */
export class IngestRulesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IngestRulesError";
  }
}

/** How the message names where an issue is: `rule 0 ("public.activity"): "audience.column"`. */
function locate(issue: v.BaseIssue<unknown>, input: unknown): string {
  const path = issue.path ?? [];
  const keys = path.map((p) => p.key);
  if (keys[0] !== "rules" || typeof keys[1] !== "number") {
    const field = keys.length > 0 ? keys.join(".") : "$";
    return `"${field}"`;
  }
  const index = keys[1];
  const rules = (input as { rules?: unknown[] }).rules;
  const table = (rules?.[index] as { table?: unknown } | undefined)?.table;
  const which = typeof table === "string"
    ? `rule ${index} ("${table.slice(0, 100)}")`
    : `rule ${index}`;
  const field = keys.slice(2).join(".") || "$";
  return `${which}: "${field}"`;
}

/**
 * Validates the rules file's text; `origin` names the file in errors. Throws an
 * {@linkcode IngestRulesError} naming the rule (index and table) and the field.
 */
export function parseRules(text: string, origin = "rules"): IngestRule[] {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (error) {
    throw new IngestRulesError(
      `Invalid ingest rules "${origin}": not JSON: ${(error as Error).message}`,
    );
  }
  const result = v.safeParse(IngestRulesSchema, input);
  if (!result.success) {
    const issue = result.issues[0];
    throw new IngestRulesError(
      `Invalid ingest rules "${origin}": ${locate(issue, input)}: ${issue.message}`,
    );
  }
  return result.output.rules;
}

/** The rules by table, each with its index in the file (which keeps their event ids apart). */
export function rulesByTable(
  rules: readonly IngestRule[],
): ReadonlyMap<string, readonly { index: number; rule: IngestRule }[]> {
  const byTable = new Map<string, { index: number; rule: IngestRule }[]>();
  rules.forEach((rule, index) => {
    const list = byTable.get(rule.table) ?? [];
    list.push({ index, rule });
    byTable.set(rule.table, list);
  });
  return byTable;
}
