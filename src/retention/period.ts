/**
 * How long a kind of record is kept, as `RELAIS_RETENTION_*` say it: a duration such as
 * `90d`, `12h`, `30m` or `10s` (a bare number is days), or `off` to keep it for ever.
 */

import * as v from "valibot";

/** Milliseconds per unit of a retention period. */
const UNITS: ReadonlyMap<string, number> = new Map([
  ["s", 1000],
  ["m", 60_000],
  ["h", 3_600_000],
  ["d", 86_400_000],
]);

/** The longest retention: a hundred years. */
const MAX_MS = 100 * 365 * 86_400_000;

/**
 * The schema of a retention variable's text: its period in milliseconds, or `undefined`
 * for `off`.
 */
export const retentionPeriod: v.GenericSchema<string, number | undefined> = v.pipe(
  v.string(),
  v.regex(/^(off|\d+[smhd]?)$/, 'expected a duration such as "90d", "12h", "10s", or "off"'),
  v.transform((text) => {
    if (text === "off") return undefined;
    const unit = /[smhd]$/.test(text) ? text.slice(-1) : "d";
    return Number.parseInt(text, 10) * UNITS.get(unit)!;
  }),
  v.check(
    (ms) => ms === undefined || (ms > 0 && ms <= MAX_MS),
    'expected a duration above zero and at most 100 years, or "off"',
  ),
);
