/**
 * Kill switches: which features are off, for whom, why and until when.
 *
 * A control applies to one scope — everyone (`SYSTEM`), an institution (`STRUCTURE`), a
 * role, a category of users or one user — and turns off some of the features
 * `realtime`, `notifications`, `messaging`, `email` and `push` (Web Push), or, for
 * everyone, `ingest` (the reading of the platform's change stream). There is at most one
 * control per scope: its id is the scope (`system`, `structure:univ-x`, `user:u1`), so setting a
 * scope's switch again replaces it. A control whose `until` has passed is inactive.
 */

import * as v from "valibot";
import { UserIdSchema } from "../schemas/user_id.ts";

/** The features a user sees switched on or off (`control` frames list them). */
export const USER_FEATURES = ["realtime", "notifications", "messaging", "email", "push"] as const;
/** Features a kill switch can turn off: the users' and the change-data ingest (`SYSTEM` scope). */
export const FEATURES = [...USER_FEATURES, "ingest"] as const;
/** A feature from {@linkcode FEATURES}. */
export type Feature = (typeof FEATURES)[number];

/** Scope types, from the widest. */
export const SCOPE_TYPES = ["SYSTEM", "STRUCTURE", "ROLE", "CATEGORY", "USER"] as const;
/** A scope type from {@linkcode SCOPE_TYPES}. */
export type ScopeType = (typeof SCOPE_TYPES)[number];

/** User categories of the directory. */
export const CATEGORIES = ["STUDENT", "STAFF"] as const;

/** Who a control applies to. */
export interface Scope {
  type: ScopeType;
  /** Absent for `SYSTEM`. */
  id?: string;
}

/** What a user is, as far as controls are concerned. */
export interface Subject {
  id: string;
  roles: readonly string[];
  structures: readonly string[];
  category?: string;
}

/** The subject of user `id`, as their directory entry (if any) describes them. */
export function subjectOf(
  id: string,
  entry?: { roles: readonly string[]; structures: readonly string[]; category?: string | null },
): Subject {
  return {
    id,
    roles: entry?.roles ?? [],
    structures: entry?.structures ?? [],
    ...(entry?.category ? { category: entry.category } : {}),
  };
}

/** Who made a change: the service key, and the person if the caller said. */
export interface Actor {
  service: string;
  by?: string;
}

/** A stored kill switch. */
export interface Control {
  /** The scope as an id: `system` or `<type>:<id>` in lower case type. */
  id: string;
  scope: Scope;
  features: Feature[];
  reason: string;
  /** When the switch turns itself off, ISO 8601; absent: until deleted. */
  until?: string;
  created_at: string;
  updated_at: string;
  created_by: Actor;
  updated_by: Actor;
}

/**
 * One entry in the audit log: a kill switch set (`put`) or removed (`delete`), or a
 * user's connections closed by an operator (`disconnect`, with `before` and `after` null
 * and `control_id` naming the user as `user:<id>`).
 */
export interface AuditEntry {
  id: string;
  at: string;
  action: "put" | "delete" | "disconnect";
  control_id: string;
  actor: Actor;
  /** Why: the control's reason, or the one given with a delete. */
  reason?: string;
  before: Control | null;
  after: Control | null;
}

const scopeId = v.pipe(
  v.string(),
  v.trim(),
  v.minLength(1, "expected a non-empty id"),
  v.maxLength(200),
  v.check(
    (s) => ![...s].some((ch) => ch.charCodeAt(0) < 0x20),
    "expected no control characters",
  ),
);

/** The scope of a control, as posted. */
export const ScopeSchema = v.variant("type", [
  v.strictObject({ type: v.literal("SYSTEM") }),
  v.strictObject({ type: v.literal("STRUCTURE"), id: scopeId }),
  v.strictObject({ type: v.literal("ROLE"), id: scopeId }),
  v.strictObject({
    type: v.literal("CATEGORY"),
    id: v.picklist(CATEGORIES, `expected ${CATEGORIES.join(" or ")}`),
  }),
  // A user is named as they are everywhere else: any id that can hold data can be switched.
  v.strictObject({ type: v.literal("USER"), id: UserIdSchema }),
], `expected a scope type among ${SCOPE_TYPES.join(", ")}`);

/**
 * An ISO 8601 timestamp that `Date.parse` reads: the ISO pattern also admits an offset of
 * hours alone (`+01`), which it does not, and an unreadable time would fail later.
 */
export const TimestampSchema = v.pipe(
  v.string(),
  v.isoTimestamp("expected an ISO 8601 timestamp"),
  v.check((s) => Number.isFinite(Date.parse(s)), "expected an ISO 8601 timestamp"),
);

/** The body of `PUT /v1/admin/controls` (and `/:id`, where `scope` may be left out). */
export const ControlInputSchema = v.strictObject({
  scope: v.optional(ScopeSchema),
  features: v.pipe(
    v.array(v.picklist(FEATURES, `expected one of ${FEATURES.join(", ")}`)),
    v.minLength(1, "expected at least one feature"),
    v.maxLength(FEATURES.length),
    v.check((list) => new Set(list).size === list.length, "expected each feature once"),
  ),
  reason: v.pipe(v.string(), v.trim(), v.minLength(1, "expected a reason"), v.maxLength(500)),
  until: v.optional(TimestampSchema),
  /** Who is making the change, for the audit log (the service key is always recorded). */
  by: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(200))),
});

/** A validated control input. */
export type ControlInput = v.InferOutput<typeof ControlInputSchema>;

/** The id of a scope: `system`, `structure:univ-x`, `role:ROLE_STAFF`, `category:STUDENT`, `user:u1`. */
export function controlId(scope: Scope): string {
  return scope.type === "SYSTEM" ? "system" : `${scope.type.toLowerCase()}:${scope.id}`;
}

/** The scope an id stands for, or `undefined` if the id is not one. */
export function scopeOfId(id: string): Scope | undefined {
  if (id === "system") return { type: "SYSTEM" };
  const at = id.indexOf(":");
  if (at <= 0) return undefined;
  const type = id.slice(0, at).toUpperCase() as ScopeType;
  const rest = id.slice(at + 1);
  const parsed = v.safeParse(ScopeSchema, { type, id: rest });
  return parsed.success && parsed.output.type !== "SYSTEM" && parsed.output.id === rest
    ? parsed.output
    : undefined;
}

/** Whether a control is in force at `now`. */
export function isActive(control: Control, now: number): boolean {
  return control.until === undefined || Date.parse(control.until) > now;
}

/** Whether a control's scope covers the subject. */
export function covers(scope: Scope, subject: Subject): boolean {
  switch (scope.type) {
    case "SYSTEM":
      return true;
    case "STRUCTURE":
      return subject.structures.includes(scope.id!);
    case "ROLE":
      return subject.roles.includes(scope.id!);
    case "CATEGORY":
      return subject.category === scope.id;
    case "USER":
      return subject.id === scope.id;
  }
}

/** Why a feature is off for a subject: the reason and end of the widest control that turns it off. */
export interface Disabled {
  feature: Feature;
  reason: string;
  until?: string;
  scope: Scope;
}

/**
 * The features turned off for `subject` at `now`, one entry per feature, from the
 * widest scope that turns it off (a `SYSTEM` reason wins over a `USER` one).
 */
export function disabledFor(
  controls: Iterable<Control>,
  subject: Subject,
  now: number,
): Disabled[] {
  const found = new Map<Feature, Disabled & { rank: number }>();
  for (const control of controls) {
    if (!isActive(control, now) || !covers(control.scope, subject)) continue;
    const rank = SCOPE_TYPES.indexOf(control.scope.type);
    for (const feature of control.features) {
      const known = found.get(feature);
      if (known && known.rank <= rank) continue;
      found.set(feature, {
        feature,
        reason: control.reason,
        ...(control.until ? { until: control.until } : {}),
        scope: control.scope,
        rank,
      });
    }
  }
  return FEATURES.filter((f) => found.has(f)).map((f) => {
    const { rank: _, ...disabled } = found.get(f)!;
    return disabled;
  });
}
