/** Validation at the edges: valibot issues become a 400 naming each field. */

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
  const details = fieldIssues(result.issues);
  const first = details[0];
  throw new AppError(
    "validation_failed",
    `Invalid ${what}: "${first.path}": ${first.message}`,
    { details },
  );
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
