/**
 * A user's identity comes from the directory: roles, structures, formations, groups and
 * category are the directory entry's, and a credential's claims only add to them. The
 * gateway's signed context carries no structures at all, so without this a user behind
 * the gateway would belong to nothing.
 */

import type { UserPrincipal } from "../auth/principal.ts";
import { mapVerified, type UserAuth } from "../auth/user_auth.ts";
import type { Directory, DirectoryEntry } from "./directory.ts";

/** Options of {@linkcode withDirectoryIdentity}. */
export interface DirectoryIdentityOptions {
  onError(message: string, error: unknown): void;
}

const union = (a: readonly string[] | undefined, b: readonly string[]) => [
  ...new Set([...(a ?? []), ...b]),
];

/** The principal with the directory entry's memberships added to its claims. */
export function withMemberships(
  principal: UserPrincipal,
  entry: DirectoryEntry | undefined,
): UserPrincipal {
  if (!entry) return principal;
  const category = entry.category ?? principal.category;
  return {
    ...principal,
    roles: union(principal.roles, entry.roles),
    structures: union(principal.structures, entry.structures),
    formations: union(principal.formations, entry.formations),
    groups: union(principal.groups, entry.groups),
    ...(category ? { category } : {}),
  };
}

/**
 * Wraps user authentication so every verified principal carries the user's directory
 * memberships, read at each authentication (give it a directory with an entry cache,
 * `withEntryCache`); when the directory cannot be read, the claims alone are used and
 * the error is reported.
 */
export function withDirectoryIdentity(
  auth: UserAuth,
  directory: Directory,
  options: DirectoryIdentityOptions,
): UserAuth {
  async function enrich(principal: UserPrincipal): Promise<UserPrincipal> {
    try {
      return withMemberships(principal, await directory.get(principal.id));
    } catch (error) {
      options.onError(`Cannot read the directory entry of "${principal.id}"`, error);
      return principal;
    }
  }

  return mapVerified(auth, enrich);
}
