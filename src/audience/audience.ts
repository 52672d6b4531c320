/**
 * The audience port: who an event reaches.
 *
 * The resolver turns an envelope's audience into user ids. The USER resolver here takes
 * targets as they are; directory-backed resolvers slot in behind the same interface.
 */

import { AppError } from "../errors.ts";
import type { Audience } from "../schemas/envelope.ts";

/** The users an audience reaches, and the targets that matched nobody. */
export interface ResolvedAudience {
  users: string[];
  unknown: string[];
}

/** Turns an audience into user ids. */
export interface AudienceResolver {
  resolve(audience: Audience): Promise<ResolvedAudience>;
}

/** Resolves `USER` audiences (targets are user ids) and refuses the other types. */
export function createUserAudienceResolver(options: { maxAudience: number }): AudienceResolver {
  return {
    resolve(audience) {
      if (audience.type !== "USER" || audience.within) {
        return Promise.reject(
          new AppError(
            "validation_failed",
            `Unsupported audience: "${audience.type}"${
              audience.within ? ' with "within"' : ""
            } needs the directory`,
            {
              details: [{
                path: audience.within ? "routing.audience.within" : "routing.audience.type",
                message: "not supported by this resolver",
              }],
            },
          ),
        );
      }
      const users = [...new Set(audience.targets)];
      if (users.length > options.maxAudience) {
        return Promise.reject(
          new AppError(
            "validation_failed",
            `Audience too large: ${users.length} users, at most ${options.maxAudience}`,
            { details: [{ path: "routing.audience.targets", message: "too many targets" }] },
          ),
        );
      }
      return Promise.resolve({ users, unknown: [] });
    },
  };
}
