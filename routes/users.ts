/** The directory: `PUT|GET|DELETE /v1/users/:id` (service key with `directory:write`). */

import { Hono } from "hono";
import * as v from "valibot";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import {
  type Directory,
  DirectoryEntryInputSchema,
  toEntry,
  UserIdSchema,
} from "../src/directory/directory.ts";
import { AppError } from "../src/errors.ts";
import type { PreferencesStore } from "../src/preferences/preferences_store.ts";
import type { ErasureStore } from "../src/store/store.ts";
import { describe } from "../src/openapi.ts";
import { validate } from "../src/validate.ts";
import { jsonBody } from "./_json_body.ts";

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
  const userId = validate("param", v.object({ id: UserIdSchema }), { what: "user id" });
  return new Hono<AppEnv>()
    .use("/v1/users/*", requireScope(deps.keys, "directory:write"))
    .put(
      "/v1/users/:id",
      describe({
        summary: "Create or replace a user's directory entry",
        description:
          "Memberships (groups, roles, structures, formations, category) are indexed atomically with the entry; audiences resolve through them.",
        tags: ["directory"],
        security: "service",
        responses: {
          200: { description: "Replaced" },
          201: { description: "Created" },
          413: { description: "Too many or too long memberships" },
        },
      }),
      userId,
      jsonBody(DirectoryEntryInputSchema, {
        maxBytes: deps.maxBodyBytes,
        what: "directory entry",
      }),
      async (c) => {
        const { id } = c.req.valid("param");
        const input = c.req.valid("json");
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
      },
    )
    .get(
      "/v1/users/:id",
      describe({
        summary: "A user's directory entry",
        tags: ["directory"],
        security: "service",
        responses: { 200: { description: "The entry" }, 404: { description: "Unknown user" } },
      }),
      userId,
      async (c) => {
        const { id } = c.req.valid("param");
        const entry = await deps.directory.get(id);
        if (!entry) throw new AppError("not_found", `Unknown user "${id.slice(0, 100)}"`);
        return c.json(entry);
      },
    )
    .delete(
      "/v1/users/:id",
      describe({
        summary: "Erase a user: directory entry, memberships, stream, inbox, preferences, presence",
        tags: ["directory"],
        security: "service",
        responses: { 200: { description: "What was erased" } },
      }),
      userId,
      async (c) => {
        const { id } = c.req.valid("param");
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
      },
    );
}
