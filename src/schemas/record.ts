/**
 * A valibot record that keeps every key.
 *
 * `v.record` leaves `__proto__`, `constructor` and `prototype` out of its output, silently.
 * In relais those are data like any other key (a preference source, a payload field), so
 * dropping them would lose what the client sent.
 */

import * as v from "valibot";
import { plainObject } from "./plain_object.ts";

/** Keys `v.record` leaves out of its output. */
const DROPPED_KEYS = ["__proto__", "constructor", "prototype"] as const;

function defineOwn(target: object, key: string, value: unknown) {
  Object.defineProperty(target, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/**
 * `v.record(key, value)` with the same validation and OpenAPI shape, whose output also
 * holds the keys `v.record` drops, each validated and set as an own property (never as
 * the prototype). An array is refused, where `v.record` would take it as an object.
 */
export function ownKeysRecord<
  const K extends v.GenericSchema<string, string | number | symbol>,
  const V extends v.GenericSchema,
>(key: K, value: V): v.RecordSchema<K, V, undefined> {
  const base = plainObject(v.record(key, value));
  const schema: v.RecordSchema<K, V, undefined> = {
    ...base,
    "~standard": {
      ...base["~standard"],
      validate: (input) =>
        schema["~run"]({ value: input }, v.getGlobalConfig()) as ReturnType<
          typeof base["~standard"]["validate"]
        >,
    },
    "~run"(dataset, config) {
      const raw = dataset.value;
      const result = base["~run"](dataset, config);
      if (typeof raw !== "object" || raw === null) return result;
      const input = raw as Record<string, unknown>;
      const before = result.issues?.length ?? 0;
      const issues = [...(result.issues ?? [])];
      for (const name of DROPPED_KEYS) {
        if (!Object.hasOwn(input, name)) continue;
        const entry = input[name];
        const keyOut = key["~run"]({ value: name }, config);
        const valueOut = value["~run"]({ value: entry }, config);
        for (const [origin, out] of [["key", keyOut], ["value", valueOut]] as const) {
          const item: v.ObjectPathItem = { type: "object", origin, input, key: name, value: entry };
          for (const issue of out.issues ?? []) {
            issues.push({ ...issue, path: [item, ...(issue.path ?? [])] } as typeof issues[0]);
          }
        }
        if (result.typed && !keyOut.issues && !valueOut.issues) {
          defineOwn(result.value, String(keyOut.value), valueOut.value);
        }
      }
      if (issues.length === before) return result;
      return { typed: false, value: result.value, issues } as unknown as typeof result;
    },
  };
  return schema;
}
