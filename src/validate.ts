/**
 * Validation at the edges: valibot issues become a 400 naming each field, whether a route's
 * validator middleware or the code itself found them.
 */

import type { ValidationTargets } from "hono";
import { validator } from "hono-openapi";
import * as v from "valibot";
import { AppError, type FieldIssue } from "./errors.ts";

/** Turns valibot issues into `{path, message}` pairs; the root is named `$`. */
export function fieldIssues(issues: readonly v.BaseIssue<unknown>[]): FieldIssue[] {
  return issues.map((issue) => ({
    path: v.getDotPath(issue) ?? "$",
    message: issue.message,
  }));
}

/**
 * The `validation_failed` {@linkcode AppError} of `issues`: its message names the first
 * bad field (`Invalid <what>: "<path>": <message>`) and its details list every issue.
 * `fields` renames top-level keys in the paths (a header read lowercase, named as sent).
 */
export function validationError(
  issues: readonly SchemaIssue[],
  what: string,
  fields?: ReadonlyMap<string, string>,
): AppError {
  const details = issues.map((issue): FieldIssue => ({
    path: dotPath(issue, fields) ?? "$",
    message: issue.message,
  }));
  const first = details[0];
  return new AppError(
    "validation_failed",
    `Invalid ${what}: "${first.path}": ${first.message}`,
    { details },
  );
}

/** One issue as a Standard Schema reports it (valibot's issues are of this shape too). */
export interface SchemaIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: unknown }>;
}

/** As valibot's `getDotPath`, for the issues of any Standard Schema. */
function dotPath(
  issue: SchemaIssue,
  fields: ReadonlyMap<string, string> | undefined,
): string | null {
  if (!issue.path) return null;
  let path = "";
  for (const segment of issue.path) {
    let key = typeof segment === "object" ? segment.key : segment;
    if (typeof key !== "string" && typeof key !== "number") return null;
    if (path === "" && typeof key === "string") key = fields?.get(key) ?? key;
    path = path === "" ? String(key) : `${path}.${key}`;
  }
  return path;
}

/**
 * Parses `input` with `schema` or throws a `validation_failed` {@linkcode AppError}
 * whose message names the first bad field and whose details list every issue.
 */
export function parseOrThrow<S extends v.GenericSchema>(
  schema: S,
  input: unknown,
  what = "request",
): v.InferOutput<S> {
  const result = v.safeParse(schema, input);
  if (result.success) return result.output;
  throw validationError(result.issues, what);
}

/** Options of {@linkcode validate}. */
export interface ValidateOptions {
  /** How the message names the input: `Invalid <what>: …` (default: the target's name). */
  what?: string;
  /** Top-level keys renamed in the error's paths, e.g. `last-event-id` → `Last-Event-ID`. */
  fields?: Record<string, string>;
}

const TARGET_NAMES: Partial<Record<keyof ValidationTargets, string>> = {
  json: "body",
  query: "query",
  param: "path",
  header: "header",
};

/**
 * A route's validator middleware for one part of the request: the handler reads the
 * output with `c.req.valid(target)`, the OpenAPI document shows the schema, and a
 * rejected input is a 400 `validation_failed` naming each field. (A JSON body must be
 * read under the body cap first: the routes' `jsonBody` does both.)
 */
export function validate<S extends v.GenericSchema, T extends keyof ValidationTargets>(
  target: T,
  schema: S,
  options: ValidateOptions = {},
) {
  const what = options.what ?? TARGET_NAMES[target] ?? target;
  const fields = options.fields ? new Map(Object.entries(options.fields)) : undefined;
  return validator(target, schema, (result) => {
    if (!result.success) throw validationError(result.error, what, fields);
  });
}

/**
 * How deeply arrays and objects nest in JSON text, counted without parsing and stopping
 * as soon as `max` is exceeded (the result is then `max + 1`). Brackets inside strings
 * do not count. Used to refuse deeply nested input before any recursive code sees it.
 */
export function jsonDepth(text: string, max = Infinity): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // a backslash escapes the next character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x7b || ch === 0x5b) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > max) return max + 1;
      }
    } else if (ch === 0x7d || ch === 0x5d) depth--;
  }
  return deepest;
}

/**
 * A whole number in a query string or path parameter, between `min` and `max`.
 */
export function queryInt(min: number, max: number) {
  return v.pipe(
    v.string(),
    v.regex(/^\d{1,15}$/, "expected a whole number"),
    v.transform(Number),
    v.minValue(min),
    v.maxValue(max),
  );
}

/** The `limit` query parameter of the admin listings: 1 to 1,000, 100 by default. */
export const adminLimit = v.optional(queryInt(1, 1000), "100");
