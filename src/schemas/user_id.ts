/**
 * What a user id is, checked wherever one enters relais: the `sub` of a token or of the
 * gateway's signed context, an envelope's targets, a directory entry and the paths of the
 * directory, export, erasure and ops routes.
 *
 * The platform chooses its users' ids, and relais keeps data under whatever it chose, so the
 * rule is as wide as a path segment allows: 1 to 256 characters, any of them (slashes,
 * spaces, Unicode), compared exactly. A path narrower than the credential would leave a user
 * who holds data unable to be exported or erased. Only `.` and `..` are not ids: no path can
 * carry them, since URLs resolve them as dot segments (even percent-encoded, and the Node
 * entry and most clients and proxies do so before relais sees the path).
 */

import * as v from "valibot";

/** Longest user id, in UTF-16 code units (as `String.length` counts them). */
export const MAX_USER_ID_CHARS = 256;

const nonEmpty = v.minLength<string, 1, string>(1, "expected a user id");
const notTooLong = v.maxLength<string, typeof MAX_USER_ID_CHARS, string>(
  MAX_USER_ID_CHARS,
  `expected at most ${MAX_USER_ID_CHARS} characters`,
);
const notDotSegment = v.check<string, string>(
  (id) => id !== "." && id !== "..",
  'expected a user id other than "." and ".."',
);

/** A user id, taken as it is: never trimmed nor normalised. */
export const UserIdSchema = v.pipe(v.string(), nonEmpty, notTooLong, notDotSegment);

/**
 * A user id as a service names one to address it (an envelope's targets): trimmed first,
 * as every id of an envelope is, then the same rule.
 */
export const TargetUserIdSchema = v.pipe(
  v.string(),
  v.trim(),
  nonEmpty,
  notTooLong,
  notDotSegment,
);
