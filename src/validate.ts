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
