/**
 * The directory port: who the users are and what they belong to.
 *
 * The portfolio backend keeps it in sync with `PUT /v1/users/:id`. Audiences by group,
 * role, structure, formation and category resolve through its indexes, and the mailer
 * reads addresses and locales from it. The Deno KV adapter is `kv_directory.ts`.
 */

import * as v from "valibot";
import { plainObject } from "../schemas/plain_object.ts";
import { UserIdSchema } from "../schemas/user_id.ts";

/** User categories. */
export const CATEGORIES = ["STUDENT", "STAFF"] as const;
/** Locales relais renders mail in. */
export const LOCALES = ["fr", "en"] as const;
/** A supported locale. */
export type Locale = (typeof LOCALES)[number];

/** Indexed membership dimensions of an entry, as named in audiences. */
export const MEMBERSHIP_DIMENSIONS = ["GROUP", "ROLE", "STRUCTURE", "FORMATION"] as const;

const ref = v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(200));
const refs = v.pipe(
  v.optional(v.array(ref), []),
  v.maxLength(100, "expected at most 100 entries"),
  v.transform((list) => [...new Set(list)]),
);

/** The body of `PUT /v1/users/:id`; `id` may be repeated in the body if it matches. */
export const DirectoryEntryInputSchema = plainObject(v.strictObject({
  id: v.optional(UserIdSchema),
  email: v.optional(v.nullable(v.pipe(v.string(), v.trim(), v.maxLength(320), v.email()))),
  name: v.optional(v.nullable(v.pipe(v.string(), v.trim(), v.maxLength(200)))),
  locale: v.optional(v.picklist(LOCALES), "fr"),
  category: v.optional(v.nullable(v.picklist(CATEGORIES))),
  roles: refs,
  structures: refs,
  formations: refs,
  groups: refs,
}));

/** A validated `PUT` body. */
export type DirectoryEntryInput = v.InferOutput<typeof DirectoryEntryInputSchema>;

/** A directory entry as stored and returned. */
export interface DirectoryEntry {
  id: string;
  email: string | null;
  name: string | null;
  locale: Locale;
  category: (typeof CATEGORIES)[number] | null;
  roles: string[];
  structures: string[];
  formations: string[];
  groups: string[];
  /** When the entry was last written, ISO 8601. */
  updated_at: string;
}

/** A dimension that can be listed: the membership ones, `CATEGORY` and `ALL`. */
export type Dimension = (typeof MEMBERSHIP_DIMENSIONS)[number] | "CATEGORY" | "ALL";

/** The values of one dimension an entry belongs to. */
export function valuesOf(entry: DirectoryEntry, dim: Dimension): string[] {
  switch (dim) {
    case "GROUP":
      return entry.groups;
    case "ROLE":
      return entry.roles;
    case "STRUCTURE":
      return entry.structures;
    case "FORMATION":
      return entry.formations;
    case "CATEGORY":
      return entry.category ? [entry.category] : [];
    case "ALL":
      return [""];
  }
}

/** Builds a stored entry from a validated input. */
export function toEntry(id: string, input: DirectoryEntryInput, now: number): DirectoryEntry {
  return {
    id,
    email: input.email ?? null,
    name: input.name ?? null,
    locale: input.locale,
    category: input.category ?? null,
    roles: input.roles,
    structures: input.structures,
    formations: input.formations,
    groups: input.groups,
    updated_at: new Date(now).toISOString(),
  };
}

/** What the directory stores and answers. */
export interface Directory {
  /** Writes an entry and its indexes atomically; `created` is false for an update. */
  put(entry: DirectoryEntry): Promise<{ created: boolean }>;
  /**
   * Changes an entry from its current value (or `undefined` if there is none) and
   * writes it with its indexes atomically, retrying on a concurrent change.
   */
  update(
    id: string,
    change: (current: DirectoryEntry | undefined) => DirectoryEntry | undefined,
  ): Promise<DirectoryEntry | undefined>;
  get(id: string): Promise<DirectoryEntry | undefined>;
  /** Entries of several users, in the same order (`undefined` for unknown ones). */
  getMany(ids: string[]): Promise<(DirectoryEntry | undefined)[]>;
  /** Removes an entry and its indexes; false if there was none. */
  delete(id: string): Promise<boolean>;
  /**
   * Calls `visit` with the ids of every member of one value of a dimension, in pages;
   * `visit` returns false to stop early.
   */
  members(
    dim: Dimension,
    value: string,
    visit: (ids: string[]) => boolean | void,
  ): Promise<void>;
}
