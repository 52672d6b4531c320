/**
 * The directory-backed audience resolver: `USER`, `GROUP`, `ROLE`, `STRUCTURE`,
 * `FORMATION` and `ALL`, each optionally narrowed with `within`.
 *
 * Members are read from the directory's indexes, never by loading entries, so a 10,000-
 * user group costs a few range scans. An audience larger than the configured maximum is
 * refused before anything is written.
 */

import type { Dimension, Directory } from "../directory/directory.ts";
import { AppError } from "../errors.ts";
import type { Audience } from "../schemas/envelope.ts";
import type { AudienceResolver, ResolvedAudience } from "./audience.ts";

/** Options of {@linkcode createDirectoryAudienceResolver}. */
export interface DirectoryAudienceOptions {
  maxAudience: number;
}

function tooLarge(count: number, max: number, exact: boolean): AppError {
  return new AppError(
    "validation_failed",
    `Audience too large: ${exact ? "" : "more than "}${count} users, at most ${max}`,
    {
      details: [{
        path: "routing.audience",
        message: `resolves to ${exact ? "" : "more than "}${count} users (limit ${max})`,
      }],
    },
  );
}

/**
 * Resolves audiences through the directory.
 *
 * `USER` targets are delivered even when the directory does not know them (a user id is
 * the token's `sub`, and the directory may lag behind); those without an entry are listed
 * in `unknown` so that a missing sync shows. With `within`, only users whose entry matches
 * every dimension given (any of its values) are kept. For the other types, a target that
 * has no member is listed in `unknown`.
 */
export function createDirectoryAudienceResolver(
  directory: Directory,
  options: DirectoryAudienceOptions,
): AudienceResolver {
  const max = options.maxAudience;

  async function membersOf(dim: Dimension, values: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (const value of values) {
      await directory.members(dim, value, (ids) => {
        for (const id of ids) out.add(id);
      });
    }
    return out;
  }

  async function narrowing(audience: Audience): Promise<((id: string) => boolean) | undefined> {
    if (!audience.within) return undefined;
    const sets: Set<string>[] = [];
    for (const [dim, values] of Object.entries(audience.within)) {
      sets.push(await membersOf(dim as Dimension, values ?? []));
    }
    sets.sort((a, b) => a.size - b.size);
    return (id) => sets.every((set) => set.has(id));
  }

  async function resolveUsers(audience: Audience): Promise<ResolvedAudience> {
    const targets = [...new Set(audience.targets)];
    if (targets.length > max && !audience.within) throw tooLarge(targets.length, max, true);
    const entries = await directory.getMany(targets);
    const unknown = targets.filter((_, i) => entries[i] === undefined);
    const keep = await narrowing(audience);
    if (!keep) return { users: targets, unknown };
    const users = targets.filter((id, i) => entries[i] !== undefined && keep(id));
    if (users.length > max) throw tooLarge(users.length, max, true);
    return { users, unknown };
  }

  async function resolveMembers(audience: Audience): Promise<ResolvedAudience> {
    const dim: Dimension = audience.type === "ALL" ? "ALL" : audience.type as Dimension;
    const values = audience.type === "ALL" ? [""] : [...new Set(audience.targets)];
    const keep = await narrowing(audience);
    const users = new Set<string>();
    const unknown: string[] = [];
    for (const value of values) {
      let found = false;
      let over = false;
      await directory.members(dim, value, (ids) => {
        if (ids.length > 0) found = true;
        for (const id of ids) if (!keep || keep(id)) users.add(id);
        if (users.size > max) {
          over = true;
          return false;
        }
      });
      if (over) throw tooLarge(max, max, false);
      if (!found && audience.type !== "ALL") unknown.push(value);
    }
    return { users: [...users], unknown };
  }

  return {
    resolve(audience) {
      return audience.type === "USER" ? resolveUsers(audience) : resolveMembers(audience);
    },
  };
}
