/**
 * The directory: `PUT|GET|DELETE /v1/users/:id` (service key with `directory:write`), and
 * the export of everything relais holds about a user, `GET /v1/users/:id/export`
 * (service key with `privacy`).
 */

import { Hono } from "hono";
import * as v from "valibot";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { type Directory, DirectoryEntryInputSchema, toEntry } from "../src/directory/directory.ts";
import { AppError } from "../src/errors.ts";
import { DELETED_USER_LABEL } from "../src/messaging/message_view.ts";
import { describe } from "../src/openapi.ts";
import type { UserErasure } from "../src/privacy/user_erasure.ts";
import type { UserExport } from "../src/privacy/user_export.ts";
import { UserIdSchema } from "../src/schemas/user_id.ts";
import { validate } from "../src/validate.ts";
import { jsonBody } from "./_json_body.ts";

/** Dependencies of {@linkcode createUserRoutes}. */
export interface UserRoutesDeps {
  keys: ServiceKeys;
  directory: Directory;
  /** Erases a user: `DELETE /v1/users/:id`. */
  erasure: UserErasure;
  /** Exports a user: `GET /v1/users/:id/export`. */
  export: UserExport;
  maxBodyBytes: number;
  now?: () => number;
}

const ERASE_DESCRIPTION = [
  "Erases the directory entry and its memberships, the stream, inbox, pending acks, delivery records, dead letters, preferences and presence;",
  "the user leaves every conversation they are in (the other member of a 1:1 conversation stays), their blocks go both ways, and their queued mail (notification tasks, digest items, mail dead letters), push subscriptions and queued pushes are dropped.",
  "Messages they wrote stay for the other members, attributed to a deleted user: `from` keeps the id, and message views add `from_deleted: true` and",
  `\`from_label: ${JSON.stringify(DELETED_USER_LABEL)}\`.`,
  "The stream's last seq stays (a count, no content), so no later item reuses a position a device still holds. The answer counts what went. Erasing twice is harmless.",
].join(" ");

const EXPORT_DESCRIPTION = [
  "One JSON document, streamed: `user`, `exported_at`, `directory` (or null), `preferences` (or null),",
  "`stream` (every stored item with its delivery state and its envelope's client view, or the conversation message it carries),",
  "`pending_acks`, `conversations` (id, kind, title, members, the user's role and read position), `messages` (those the user wrote, newest first per conversation),",
  "`blocks` (`blocked`, `blocked_by`), `mail` (`tasks`, `digest_items`, `dead_letters`), `push_subscriptions` and `push_tasks`.",
  "The stream and the messages are read and written one page at a time.",
].join(" ");

/** `/v1/users/:id`: the directory entry of one user, its export and its erasure. */
export function createUserRoutes(deps: UserRoutesDeps) {
  const now = deps.now ?? Date.now;
  const userId = validate("param", v.object({ id: UserIdSchema }), { what: "user id" });
  const directoryScope = requireScope(deps.keys, "directory:write");
  const privacyScope = requireScope(deps.keys, "privacy");
  return new Hono<AppEnv>()
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
      directoryScope,
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
      directoryScope,
      userId,
      async (c) => {
        const { id } = c.req.valid("param");
        const entry = await deps.directory.get(id);
        if (!entry) throw new AppError("not_found", `Unknown user "${id.slice(0, 100)}"`);
        return c.json(entry);
      },
    )
    .get(
      "/v1/users/:id/export",
      describe({
        summary: "Export everything relais holds about a user (scope `privacy`)",
        description: EXPORT_DESCRIPTION,
        tags: ["directory"],
        security: "service",
        responses: {
          200: { description: "The user's document (empty parts for an unknown user)" },
        },
      }),
      privacyScope,
      userId,
      async (c) => {
        const { id } = c.req.valid("param");
        const pieces = await deps.export.exportUser(id);
        const encoder = new TextEncoder();
        // Pulled: the next piece is read from the store only once the reader took this one.
        const body = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const { value, done } = await pieces.next();
            if (done) controller.close();
            else controller.enqueue(encoder.encode(value));
          },
          async cancel() {
            await pieces.return();
          },
        });
        return c.body(body, 200, {
          "Content-Type": "application/json; charset=utf-8",
          "Cache-Control": "no-store",
        });
      },
    )
    .delete(
      "/v1/users/:id",
      describe({
        summary: "Erase a user: everything relais holds about them",
        description: ERASE_DESCRIPTION,
        tags: ["directory"],
        security: "service",
        responses: { 200: { description: "What was erased" } },
      }),
      directoryScope,
      userId,
      async (c) => {
        const { id } = c.req.valid("param");
        const erased = await deps.erasure.eraseUser(id, c.get("service").name);
        return c.json({
          id,
          erased: {
            directory: erased.directory,
            preferences: erased.preferences,
            stream_items: erased.streamItems,
            pending_acks: erased.pendingAcks,
            conversations: erased.conversations,
            messages_attributed: erased.messages,
            blocks: erased.blocks,
            mail_tasks: erased.mailTasks,
            digest_items: erased.digestItems,
            push_subscriptions: erased.pushSubscriptions,
            push_tasks: erased.pushTasks,
          },
        });
      },
    );
}
