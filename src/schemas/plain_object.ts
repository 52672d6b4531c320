/**
 * Object schemas that take a JSON object only.
 *
 * valibot's `object`, `strictObject`, `looseObject` and `record` take an array for an
 * object: `["a", "b"]` passes a record as `{"0": "a", "1": "b"}`, and `[]` passes an object
 * whose fields are all optional as its defaults. Where relais asks for an object, an array
 * is a mistake of the sender, never data to convert.
 */

import * as v from "valibot";

/** Whether `value` is a JSON object: neither an array nor `null`. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * `schema` (an object or record schema, piped or not) refusing an array with the type
 * issue it gives any other value that is not an object; same output and OpenAPI shape.
 */
export function plainObject<const S extends v.GenericSchema>(schema: S): S {
  return v._standardSchema({
    ...schema,
    "~run"(dataset: v.UnknownDataset, config: v.Config<v.GenericIssue>) {
      if (Array.isArray(dataset.value)) {
        v._addIssue(schema, "type", dataset, config);
        return dataset as unknown as v.FailureDataset<v.InferIssue<S>>;
      }
      return schema["~run"](dataset, config);
    },
  }) as S;
}
