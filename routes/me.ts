/** The user's own inbox: list, read, read-all, ack. */

import { Hono } from "hono";
import * as v from "valibot";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import { AppError } from "../src/errors.ts";
import type { Sessions } from "../src/realtime/session.ts";
import { EventIdParamSchema, toClientEnvelope } from "../src/schemas/envelope.ts";
import type { InboxStore } from "../src/store/store.ts";
import { describe } from "../src/openapi.ts";
import { queryInt, validate } from "../src/validate.ts";

/** Query of `GET /v1/me/notifications`. */
export const InboxQuerySchema = v.object({
  after: v.optional(queryInt(0, Number.MAX_SAFE_INTEGER)),
  limit: v.optional(queryInt(1, 100), "50"),
  unread: v.optional(v.picklist(["true", "false", "1", "0"]), "false"),
});

/** Dependencies of {@linkcode createMeRoutes}. */
export interface MeRoutesDeps extends RequireUserDeps {
  store: InboxStore;
  sessions: Sessions;
}

/** `/v1/me/notifications` and its actions. */
export function createMeRoutes(deps: MeRoutesDeps) {
  const notFound = (id: string) =>
    new AppError("not_found", `Unknown notification "${id.slice(0, 100)}"`);
  const notificationId = validate("param", v.object({ id: EventIdParamSchema }), {
    what: "notification id",
  });
  return new Hono<AppEnv>()
    .use("/v1/me/*", requireUser(deps))
    .get(
      "/v1/me/notifications",
      describe({
        summary: "The user's inbox, newest first (or ascending after a seq)",
        tags: ["inbox"],
        security: "user",
        responses: { 200: { description: "A page of items and the unread count" } },
      }),
      validate("query", InboxQuerySchema),
      async (c) => {
        const query = c.req.valid("query");
        const page = await deps.store.listInbox(c.get("user").id, {
          after: query.after,
          limit: query.limit,
          unreadOnly: query.unread === "true" || query.unread === "1",
          now: Date.now(),
        });
        return c.json({
          items: page.items.map((item) => ({
            seq: item.seq,
            id: item.id,
            ...toClientEnvelope(item.envelope),
            read: item.readAt !== undefined,
            ...(item.readAt !== undefined ? { read_at: new Date(item.readAt).toISOString() } : {}),
            ack_required: item.ack,
          })),
          unread_count: page.unread,
          ...(page.next !== undefined ? { next: page.next } : {}),
        });
      },
    )
    .post(
      "/v1/me/notifications/read-all",
      describe({
        summary: "Mark every inbox item read",
        tags: ["inbox"],
        security: "user",
        responses: { 200: { description: "How many items were marked" } },
      }),
      async (c) => {
        const count = await deps.store.markAllRead(c.get("user").id, Date.now());
        return c.json({ read: count });
      },
    )
    .post(
      "/v1/me/notifications/:id/read",
      describe({
        summary: "Mark one inbox item read",
        tags: ["inbox"],
        security: "user",
        responses: { 200: { description: "Marked" }, 404: { description: "Unknown item" } },
      }),
      notificationId,
      async (c) => {
        const { id } = c.req.valid("param");
        if (!(await deps.sessions.read(c.get("user").id, id))) throw notFound(id);
        return c.json({ id, read: true });
      },
    )
    .post(
      "/v1/me/notifications/:id/ack",
      describe({
        summary: "Acknowledge an item",
        tags: ["inbox"],
        security: "user",
        responses: { 200: { description: "Acknowledged" }, 404: { description: "Unknown item" } },
      }),
      notificationId,
      async (c) => {
        const { id } = c.req.valid("param");
        if (!(await deps.sessions.ack(c.get("user").id, id))) throw notFound(id);
        return c.json({ id, acked: true });
      },
    );
}
