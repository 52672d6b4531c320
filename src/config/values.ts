/**
 * The value schemas environment variables are read with: each takes the trimmed text of
 * one variable and gives its typed value, or an issue whose message completes
 * `Invalid NAME: …` (the variable's name is added by the caller).
 */

import * as v from "valibot";
import { parseCidr } from "../ratelimit/client_ip.ts";

/** The scopes a service key can carry. */
export const SCOPES = [
  "events:publish",
  "directory:write",
  "conversations:write",
  "privacy",
  "admin",
] as const;

/** A scope from {@linkcode SCOPES}. */
export type Scope = (typeof SCOPES)[number];

/** A service API key with its scopes. */
export interface ServiceKey {
  name: string;
  key: string;
  scopes: Scope[];
}

/** The rate limiter adapters. */
export const RATE_LIMITER_KINDS = ["memory", "kv", "redis"] as const;

/** A rate limiter adapter, as `RELAIS_RATE_LIMITER` names it. */
export type RateLimiterKind = (typeof RATE_LIMITER_KINDS)[number];

/** At most `limit` hits per `windowMs`, over a sliding window. */
export interface RateRule {
  limit: number;
  windowMs: number;
}

/** The schema of one variable's text: trimmed and never empty when it runs. */
export type ValueSchema<T = unknown> = v.GenericSchema<string, T>;

/** Any non-empty text, as given. */
export const text: ValueSchema<string> = v.pipe(v.string(), v.minLength(1));

/** A whole number between `min` and `max`. */
export const integer = (min: number, max: number): ValueSchema<number> =>
  v.pipe(
    v.string(),
    v.regex(/^\d+$/, "expected a whole number"),
    v.transform(Number),
    v.minValue(min, `expected at least ${min}`),
    v.maxValue(max, `expected at most ${max}`),
  );

/** An absolute URL with one of `protocols` (such as `"https:"`). */
export const url = (protocols: string[]): ValueSchema<string> =>
  v.pipe(
    v.string(),
    v.url("expected a URL"),
    v.check(
      (s) => URL.canParse(s) && protocols.includes(new URL(s).protocol),
      `expected a URL starting with ${protocols.map((p) => `"${p}//"`).join(" or ")}`,
    ),
  );

/** One of `options`; the message lists them as `expected`. */
export const oneOf = <const T extends readonly string[]>(
  options: T,
  expected: string,
): ValueSchema<T[number]> => v.picklist(options, expected);

/** `true`/`1` or `false`/`0`. */
export const flag: ValueSchema<boolean> = v.pipe(
  v.picklist(["true", "false", "1", "0"], 'expected "true" or "false"'),
  v.transform((s) => s === "true" || s === "1"),
);

/** A local time of day, `HH:MM`. */
export const timeOfDay: ValueSchema<string> = v.pipe(
  v.string(),
  v.regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected "HH:MM"'),
);

/** A key prefix for Redis. */
export const keyPrefix: ValueSchema<string> = v.pipe(
  v.string(),
  v.regex(/^[\w.:-]{1,100}$/, "expected letters, digits, . : _ or -"),
);

const entries = (raw: string) => raw.split(",").map((s) => s.trim()).filter(Boolean);

/** `kid:secret,...`: the gateway's HMAC secrets by key id. */
export const gatewayKeys: ValueSchema<Record<string, string>> = v.pipe(
  v.string(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    // Key ids are input: a kid such as "__proto__" must stay a key like any other.
    const keys: Record<string, string> = Object.create(null);
    for (const entry of entries(dataset.value)) {
      const at = entry.indexOf(":");
      if (at <= 0 || at === entry.length - 1) {
        addIssue({ message: 'expected "kid:secret" entries separated by commas' });
        return NEVER;
      }
      keys[entry.slice(0, at)] = entry.slice(at + 1);
    }
    return keys;
  }),
);

/** `name:key:scope+scope,...`; messages never show a key. */
export const serviceKeys: ValueSchema<ServiceKey[]> = v.pipe(
  v.string(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const keys: ServiceKey[] = [];
    for (const [index, entry] of entries(dataset.value).entries()) {
      // Scopes contain colons themselves (`events:publish`): only the first two separate.
      const first = entry.indexOf(":");
      const second = entry.indexOf(":", first + 1);
      const parts = first < 0 || second < 0
        ? []
        : [entry.slice(0, first), entry.slice(first + 1, second), entry.slice(second + 1)];
      if (parts.length !== 3 || parts.some((p) => !p)) {
        addIssue({
          message: `entry ${index + 1} is not "name:key:scope+scope" (the key is not shown)`,
        });
        return NEVER;
      }
      const [name, key, scopeList] = parts;
      if (key.length < 16) {
        addIssue({ message: `the key of "${name}" is shorter than 16 characters` });
        return NEVER;
      }
      const scopes = scopeList.split("+");
      const unknown = scopes.find((scope) => !(SCOPES as readonly string[]).includes(scope));
      if (unknown !== undefined) {
        addIssue({
          message: `unknown scope "${unknown}" for "${name}" (expected ${SCOPES.join(", ")})`,
        });
        return NEVER;
      }
      keys.push({ name, key, scopes: scopes as Scope[] });
    }
    return keys;
  }),
);

const DURATION_UNITS = new Map([["ms", 1], ["s", 1000], ["m", 60_000], ["h", 3_600_000]]);

/** `count/window` such as `30/10s` (units ms, s, m, h; a bare number is seconds), or `off`. */
export const rateRule: ValueSchema<RateRule | undefined> = v.pipe(
  v.string(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const rule = dataset.value.trim().toLowerCase();
    if (rule === "off") return undefined;
    const match = /^(\d{1,9})\s*\/\s*(\d{0,9})\s*(ms|s|m|h)?$/.exec(rule);
    const limit = match ? Number(match[1]) : 0;
    const windowMs = match ? Number(match[2] || "1") * DURATION_UNITS.get(match[3] ?? "s")! : 0;
    if (!match || limit < 1 || windowMs < 1 || windowMs > 86_400_000) {
      addIssue({
        message: 'expected "count/window" such as "30/10s" (ms, s, m or h, at most 24h) or "off"',
      });
      return NEVER;
    }
    return { limit, windowMs };
  }),
);

/** CIDRs or addresses, separated by commas. */
export const cidrs: ValueSchema<string[]> = v.pipe(
  v.string(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const list = entries(dataset.value);
    const bad = list.find((cidr) => !parseCidr(cidr));
    if (bad !== undefined) {
      addIssue({
        message: `${
          JSON.stringify(bad.slice(0, 100))
        } is not a CIDR such as "10.0.0.0/8" or an address`,
      });
      return NEVER;
    }
    return list;
  }),
);

/** `*`, or http(s) origins separated by commas. */
export const origins: ValueSchema<string[] | "*"> = v.pipe(
  v.string(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    if (dataset.value === "*") return "*" as const;
    const list: string[] = [];
    for (const origin of entries(dataset.value)) {
      const url = URL.canParse(origin) ? new URL(origin) : undefined;
      if (!url || !["http:", "https:"].includes(url.protocol) || url.origin !== origin) {
        addIssue({
          message: `${
            JSON.stringify(origin.slice(0, 100))
          } is not an origin such as "https://portfolio.example.org"`,
        });
        return NEVER;
      }
      list.push(url.origin);
    }
    return list;
  }),
);

/** One environment variable. */
export interface Variable {
  /** What it sets, as the README's table says it. */
  readonly meaning: string;
  /** Reads its trimmed, non-empty text. */
  readonly schema: ValueSchema;
  /** The text used when it is unset or blank; without one, an unset variable reads `undefined`. */
  readonly fallback?: string;
  /** The default as the README says it, when it is not `fallback`: computed, generated or off. */
  readonly documented?: string;
}
