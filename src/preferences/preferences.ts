/**
 * Notification preferences: per `source`, which channels (in-app, email, push or none) and
 * whether email comes at once or in an hourly or daily digest; quiet hours in the user's
 * time zone; a global switch (the platform's `notificationEnabled`).
 *
 * Everything here is pure: the store is `kv_preferences.ts`, and the clock is a parameter.
 */

import * as v from "valibot";
import { type Locale, LOCALES } from "../directory/directory.ts";
import type { Envelope } from "../schemas/envelope.ts";
import { plainObject } from "../schemas/plain_object.ts";
import { ownKeysRecord } from "../schemas/record.ts";

/** Digest periods. */
export const DIGESTS = ["off", "hourly", "daily"] as const;
/** A digest period. */
export type Digest = (typeof DIGESTS)[number];

const time = v.pipe(v.string(), v.regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected "HH:MM"'));

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The preferences of one source. */
export const SourcePreferenceSchema = plainObject(v.strictObject({
  channels: v.pipe(
    v.array(v.picklist(["inapp", "email", "push", "none"])),
    v.maxLength(4),
    v.check(
      (list) => !list.includes("none") || list.length === 1,
      '"none" cannot be combined with another channel',
    ),
    v.transform((list) =>
      [...new Set(list)].filter((c) => c !== "none") as ("inapp" | "email" | "push")[]
    ),
  ),
  digest: v.optional(v.picklist(DIGESTS), "off"),
}));

/** The preferences of one source, as validated. */
export type SourcePreference = v.InferOutput<typeof SourcePreferenceSchema>;

/** The body of `PUT /v1/me/preferences` (missing fields take their defaults). */
export const PreferencesSchema = plainObject(v.strictObject({
  enabled: v.optional(v.boolean(), true),
  locale: v.optional(v.nullable(v.picklist(LOCALES)), null),
  timezone: v.optional(
    v.pipe(v.string(), v.maxLength(64), v.check(isTimeZone, "expected an IANA time zone")),
    "Europe/Paris",
  ),
  quiet_hours: v.optional(
    v.nullable(
      v.pipe(
        plainObject(v.strictObject({ start: time, end: time })),
        v.check((q) => q.start !== q.end, "expected different start and end"),
      ),
    ),
    null,
  ),
  sources: v.optional(
    v.pipe(
      // Every source name is kept, `__proto__` and `constructor` included.
      ownKeysRecord(v.pipe(v.string(), v.minLength(1), v.maxLength(100)), SourcePreferenceSchema),
      v.check((r) => Object.keys(r).length <= 200, "expected at most 200 sources"),
    ),
    {},
  ),
}));

/** A user's preferences. */
export type Preferences = v.InferOutput<typeof PreferencesSchema>;

/** Preferences of a user who never set any. */
export const DEFAULT_PREFERENCES: Preferences = Object.freeze({
  enabled: true,
  locale: null,
  timezone: "Europe/Paris",
  quiet_hours: null,
  sources: {},
}) as Preferences;

/**
 * Whether an item ignores mutes, quiet hours and digests: SYSTEM items and HIGH items
 * from the `platform` source.
 */
export function isCritical(metadata: Pick<Envelope["metadata"], "type" | "priority" | "source">) {
  return metadata.type === "SYSTEM" ||
    (metadata.priority === "HIGH" && metadata.source === "platform");
}

/** How one user gets one item, once the envelope's channels and preferences are applied. */
export interface ChannelChoice {
  inapp: boolean;
  email: boolean;
  digest: Digest;
}

/**
 * Applies a user's preferences to an envelope. Preferences only filter: a channel the
 * envelope does not ask for is never added. Only NOTIFICATIONs are subject to them;
 * REALTIME and MESSAGE items are not notifications, and critical ones ignore mutes.
 */
export function chooseChannels(envelope: Envelope, prefs: Preferences | undefined): ChannelChoice {
  const wanted = envelope.routing.channels;
  const inapp = wanted.includes("inapp");
  const email = wanted.includes("email") && envelope.metadata.type === "NOTIFICATION";
  if (envelope.metadata.type !== "NOTIFICATION" || isCritical(envelope.metadata) || !prefs) {
    return { inapp, email, digest: "off" };
  }
  if (!prefs.enabled) return { inapp: false, email: false, digest: "off" };
  // The source comes from the envelope: only the user's own entries count.
  const { sources } = prefs;
  const source = Object.hasOwn(sources, envelope.metadata.source)
    ? sources[envelope.metadata.source]
    : undefined;
  if (!source) return { inapp, email, digest: "off" };
  return {
    inapp: inapp && source.channels.includes("inapp"),
    email: email && source.channels.includes("email"),
    digest: source.digest,
  };
}

/**
 * Whether a NOTIFICATION may go out as a Web Push message to a user without a live
 * connection: it asks for the in-app channel (a push is the device's notice of an in-app
 * item), and, unless critical, the user's preferences let it through — notifications on,
 * and `push` among the channels of its source when that source has an entry.
 */
export function choosePush(envelope: Envelope, prefs: Preferences | undefined): boolean {
  if (envelope.metadata.type !== "NOTIFICATION") return false;
  if (!envelope.routing.channels.includes("inapp")) return false;
  if (isCritical(envelope.metadata) || !prefs) return true;
  if (!prefs.enabled) return false;
  const { sources } = prefs;
  if (!Object.hasOwn(sources, envelope.metadata.source)) return true;
  return sources[envelope.metadata.source].channels.includes("push");
}

const MINUTE = 60_000;

/** Minutes since local midnight in a time zone. */
export function localMinutes(at: number, timezone: string): number {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: timezone,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(new Date(at));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return get("hour") * 60 + get("minute");
}

const toMinutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/**
 * When the user's quiet hours end, if `at` falls within them; `undefined` otherwise.
 * A window may wrap midnight (`22:00`–`07:00`).
 */
export function quietUntil(prefs: Preferences | undefined, at: number): number | undefined {
  const quiet = prefs?.quiet_hours;
  if (!quiet) return undefined;
  const now = localMinutes(at, prefs.timezone);
  const start = toMinutes(quiet.start);
  const end = toMinutes(quiet.end);
  const inside = start < end ? now >= start && now < end : now >= start || now < end;
  if (!inside) return undefined;
  const left = (end - now + 1440) % 1440;
  // Land on the minute boundary; a DST shift inside the window is caught on the re-check.
  return Math.floor(at / MINUTE) * MINUTE + left * MINUTE;
}

/**
 * When the next digest of a period goes out after `at`: the next full hour, or the next
 * `dailyAt` ("HH:MM") in the user's time zone.
 */
export function nextDigestAt(
  period: Exclude<Digest, "off">,
  at: number,
  options: { timezone: string; dailyAt: string },
): number {
  const minuteStart = Math.floor(at / MINUTE) * MINUTE;
  if (period === "hourly") {
    const now = localMinutes(at, options.timezone);
    return minuteStart + (60 - (now % 60)) * MINUTE;
  }
  const now = localMinutes(at, options.timezone);
  const left = (toMinutes(options.dailyAt) - now + 1440) % 1440 || 1440;
  return minuteStart + left * MINUTE;
}

/** The locale to write to a user in: their preference, else the directory's, else French. */
export function localeOf(prefs: Preferences | undefined, directoryLocale?: Locale): Locale {
  return prefs?.locale ?? directoryLocale ?? "fr";
}
