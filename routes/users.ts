/** The directory: `PUT|GET|DELETE /v1/users/:id` (service key with `directory:write`). */

import { Hono } from "hono";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { readJson } from "../src/body.ts";
import {
  type Directory,
  DirectoryEntryInputSchema,
  toEntry,
  UserIdSchema,
} from "../src/directory/directory.ts";
import { AppError } from "../src/errors.ts";
import type { PreferencesStore } from "../src/preferences/preferences_store.ts";
import type { ErasureStore } from "../src/store/store.ts";
import { parseOrThrow } from "../src/validate.ts";

/** Dependencies of {@linkcode createUserRoutes}. */
export interface UserRoutesDeps {
  keys: ServiceKeys;
  directory: Directory;
  preferences: PreferencesStore;
  store: ErasureStore;
  /** Ends the user's live connections and stops their actor (presence). */
  disconnect(user: string): void;
  maxBodyBytes: number;
  now?: () => number;
}

/** `/v1/users/:id`: the directory entry of one user, and its erasure. */
export function createUserRoutes(deps: UserRoutesDeps) {
  const now = deps.now ?? Date.now;
  const userId = (raw: string) => parseOrThrow(UserIdSchema, raw, "user id");
  return new Hono<AppEnv>()
    .use("/v1/users/*", requireScope(deps.keys, "directory:write"))
    .put("/v1/users/:id", async (c) => {
      const id = userId(c.req.param("id"));
      const input = parseOrThrow(
        DirectoryEntryInputSchema,
        await readJson(c, deps.maxBodyBytes),
        "directory entry",
      );
      if (input.id !== undefined && input.id !== id) {
        throw new AppError(
          "validation_failed",
          `Invalid directory entry: "id": "${input.id.slice(0, 100)}" does not match the path`,
          { details: [{ path: "id", message: "does not match the path" }] },
        );
      }
      const entry = toEntry(id, input, now());
      const { created } = await deps.directory.put(entry);
      return c.json(entry, created ? 201 : 200);
    })
    .get("/v1/users/:id", async (c) => {
      const id = userId(c.req.param("id"));
      const entry = await deps.directory.get(id);
      if (!entry) throw new AppError("not_found", `Unknown user "${id.slice(0, 100)}"`);
      return c.json(entry);
    })
    .delete("/v1/users/:id", async (c) => {
      const id = userId(c.req.param("id"));
      deps.disconnect(id);
      const [directory, preferences, erased] = await Promise.all([
        deps.directory.delete(id),
        deps.preferences.delete(id),
        deps.store.eraseUser(id),
      ]);
      return c.json({
        id,
        erased: {
          directory,
          preferences,
          stream_items: erased.streamItems,
          pending_acks: erased.pendingAcks,
        },
      });
    });
}
