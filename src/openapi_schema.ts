/**
 * Valibot schemas as JSON Schema (draft 2020-12) for the OpenAPI document: what a client
 * sends, with the parts JSON Schema cannot express said in `$comment` rather than failing.
 */

import type * as v from "valibot";
import { toJsonSchema } from "@valibot/to-json-schema";

/** A JSON Schema (or any JSON object) in the document. */
export type JsonObject = Record<string, unknown>;

// Refinements and normalisations that do not change the shape a client sends: the
// converter would otherwise report them, and every schema would look lossy.
const SHAPE_PRESERVING_ACTIONS = [
  "check",
  "forward",
  "partial_check",
  "raw_check",
  "brand",
  "readonly",
  "trim",
  "trim_start",
  "trim_end",
  "normalize",
  "to_lower_case",
  "to_upper_case",
];

/** Where {@linkcode convertSchema} puts what one conversion produces. */
export interface ConvertContext {
  /** Namespaces the converter's numbered definitions (`0`, `1`…) per call. */
  prefix: string;
  /** Named schemas, referred to as `#/components/schemas/<name>` wherever they appear. */
  definitions: Record<string, v.GenericSchema>;
  /** Receives the definitions a conversion produced. */
  components: Record<string, JsonObject>;
}

/**
 * Converts one schema, never throwing: parts JSON Schema cannot express (dates, custom
 * checks, instances) become `{}`, and the result says so in `$comment`. Definitions are
 * hoisted into `components` because a `#/$defs/…` reference inside an OpenAPI document
 * would resolve against the document root.
 */
export function convertSchema(schema: v.GenericSchema, context: ConvertContext): JsonObject {
  const componentName = (id: string) => id in context.definitions ? id : `${context.prefix}_${id}`;
  const base = {
    target: "draft-2020-12",
    typeMode: "input",
    ignoreActions: SHAPE_PRESERVING_ACTIONS,
  } as const;

  let problem: string | undefined;
  try {
    // Without the named definitions: the converter converts all of them on every call,
    // and a problem in one this schema does not use must not be reported here.
    toJsonSchema(schema, { ...base, errorMode: "throw" });
  } catch (error) {
    problem = error instanceof Error ? error.message : String(error);
  }
  let converted: JsonObject;
  try {
    converted = toJsonSchema(schema, {
      ...base,
      errorMode: "ignore",
      definitions: context.definitions,
      overrideRef: ({ referenceId }) => `#/components/schemas/${componentName(referenceId)}`,
    }) as JsonObject;
  } catch (error) {
    converted = {};
    problem ??= error instanceof Error ? error.message : String(error);
  }

  const { $schema: _, $defs, ...result } = converted;
  for (const [id, definition] of Object.entries(($defs ?? {}) as Record<string, JsonObject>)) {
    context.components[componentName(id)] ??= definition;
  }
  if (problem !== undefined) {
    result.$comment = `Partly converted from valibot: ${problem}`;
  }
  return result;
}
