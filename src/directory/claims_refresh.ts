/**
 * Optional directory refresh from token claims: when a user authenticates, the roles and
 * structures their token carries replace those of their directory entry (at most once a
 * minute per user), so the audiences follow the identity provider between two syncs.
 */

import { LRUCache } from "lru-cache";
import { mapVerified, type UserAuth } from "../auth/user_auth.ts";
import type { UserPrincipal } from "../auth/principal.ts";
import type { Directory, DirectoryEntry } from "./directory.ts";

/** Options of {@linkcode withClaimsRefresh}. */
export interface ClaimsRefreshOptions {
  /** The shortest time between two refreshes of one user. */
  intervalMs?: number;
  onError(message: string, error: unknown): void;
  now?: () => number;
}

const MAX_TRACKED = 10_000;

const same = (a: string[], b: string[]) =>
  a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);

/** Returns the entry updated from the claims, or the same object when nothing changes. */
export function applyClaims(
  current: DirectoryEntry | undefined,
  principal: UserPrincipal,
  now: number,
): DirectoryEntry | undefined {
  const roles = [...new Set(principal.roles)].slice(0, 100);
  const structures = [...new Set(principal.structures)].slice(0, 100);
  if (current && same(current.roles, roles) && same(current.structures, structures)) return current;
  const base: DirectoryEntry = current ?? {
    id: principal.id,
    email: null,
    name: null,
    locale: "fr",
    category: null,
    roles: [],
    structures: [],
    formations: [],
    groups: [],
    updated_at: new Date(now).toISOString(),
  };
  return { ...base, roles, structures, updated_at: new Date(now).toISOString() };
}

/** Wraps user authentication so that each verified user refreshes their directory entry. */
export function withClaimsRefresh(
  auth: UserAuth,
  directory: Directory,
  options: ClaimsRefreshOptions,
): UserAuth {
  const interval = options.intervalMs ?? 60_000;
  const now = options.now ?? Date.now;
  const last = new LRUCache<string, number>({ max: MAX_TRACKED });

  function refresh(principal: UserPrincipal) {
    // A token without these claims says nothing about them: keep the directory's.
    if (principal.roles.length === 0 && principal.structures.length === 0) return;
    const at = now();
    const previous = last.get(principal.id);
    if (previous !== undefined && at - previous < interval) return;
    last.set(principal.id, at);
    directory.update(principal.id, (current) => applyClaims(current, principal, at))
      .catch((e) => options.onError(`Cannot refresh the directory entry of "${principal.id}"`, e));
  }

  return mapVerified(auth, (principal) => {
    refresh(principal);
    return principal;
  });
}
