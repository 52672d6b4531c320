/**
 * Ops (admin scope): live actors and their XState snapshots, dead letters, the metrics
 * history the ops page charts, user and conversation lookups, and disconnecting a user.
 */

import { Hono } from "hono";
import * as v from "valibot";
import { ACTOR_KINDS, type Registry } from "../actors/registry.ts";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { UserIdSchema } from "../src/schemas/user_id.ts";
import { AppError } from "../src/errors.ts";
import type { MetricsHistory } from "../src/ops/metrics_history.ts";
import type { Lookups } from "../src/ops/lookups.ts";
import type { DeliveryStore } from "../src/store/store.ts";
import { describe } from "../src/openapi.ts";
import { adminLimit, validate } from "../src/validate.ts";
import { ConversationIdSchema } from "./_conversation_common.ts";
import { jsonBody } from "./_json_body.ts";

const kind = v.picklist(
  ACTOR_KINDS,
  `expected one of ${ACTOR_KINDS.map((k) => `"${k}"`).join(", ")}`,
);

/** Query of `GET /v1/admin/actors`. */
export const ActorsQuerySchema = v.object({ kind: v.optional(kind) });
/** Query of `GET /v1/admin/dead-letters`. */
export const DeadLettersQuerySchema = v.object({
  limit: adminLimit,
});

/** Body of `POST /v1/admin/users/:id/disconnect` (optional): why, and who. */
export const DisconnectSchema = v.strictObject({
  reason: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(500))),
  by: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(200))),
});

/** Dependencies of {@linkcode createAdminRoutes}. */
export interface AdminRoutesDeps {
  keys: ServiceKeys;
  registry: Registry;
  store: Pick<DeliveryStore, "listDeadLetters">;
  /** The ops page's charts and lookups; absent: those routes are not mounted. */
  ops?: { history: MetricsHistory; lookups: Lookups };
}

/**
 * `/v1/admin/actors`, `/v1/admin/dead-letters`, `/v1/admin/metrics/history`,
 * `/v1/admin/users/:id` (and its `disconnect`) and `/v1/admin/conversations/:id`.
 */
export function createAdminRoutes(deps: AdminRoutesDeps) {
  const app = new Hono<AppEnv>()
    .use("/v1/admin/*", requireScope(deps.keys, "admin"))
    .get(
      "/v1/admin/actors",
      describe({
        summary: "Live actors",
        tags: ["ops"],
        security: "admin",
        responses: { 200: { description: "Actors with their state value" } },
      }),
      validate("query", ActorsQuerySchema),
      (c) => {
        const actors = deps.registry.list(c.req.valid("query").kind);
        return c.json({ count: actors.length, actors });
      },
    )
    .get(
      "/v1/admin/actors/:kind/:id",
      describe({
        summary: "One actor's XState snapshot and pending timers",
        tags: ["ops"],
        security: "admin",
        responses: {
          200: { description: "Snapshot" },
          404: { description: "No such live actor" },
        },
      }),
      validate("param", v.object({ kind, id: v.string() }), { what: "actor" }),
      (c) => {
        const { kind: k, id } = c.req.valid("param");
        const detail = deps.registry.inspect(k, id);
        if (!detail) throw new AppError("not_found", `No live ${k} actor "${id.slice(0, 100)}"`);
        return c.json(detail);
      },
    )
    .get(
      "/v1/admin/dead-letters",
      describe({
        summary: "Items never acknowledged within their retry limit, newest first",
        tags: ["ops"],
        security: "admin",
        responses: { 200: { description: "Dead letters" } },
      }),
      validate("query", DeadLettersQuerySchema),
      async (c) => {
        const items = await deps.store.listDeadLetters({ limit: c.req.valid("query").limit });
        return c.json({ count: items.length, items });
      },
    );
  return deps.ops ? withOps(app, deps.ops) : app;
}

/** The routes of the ops page's charts and lookups. */
function withOps(app: Hono<AppEnv>, ops: NonNullable<AdminRoutesDeps["ops"]>) {
  const userId = validate("param", v.object({ id: UserIdSchema }), { what: "user id" });
  return app
    .get(
      "/v1/admin/metrics/history",
      describe({
        summary: "The last 15 minutes of the ops charts, sampled every 5 s on this node",
        description:
          "Connections by transport, deliveries per second, publish → send p50 and p99 (ms, over each interval), redeliveries and dead letters per second, mail queue depth, mail breaker (0 closed, 1 half-open, 2 open) and ingest lag (`null` when off). Points are oldest first; the last one is read at the time of the request.",
        tags: ["ops"],
        security: "admin",
        responses: { 200: { description: "Points of the window" } },
      }),
      async (c) => c.json(await ops.history.history()),
    )
    .get(
      "/v1/admin/users/:id",
      describe({
        summary:
          "Everything this node knows of a user: directory entry, connections, stream head, unread, pending acks, switches, last deliveries",
        tags: ["ops"],
        security: "admin",
        responses: { 200: { description: "The user as this node sees them" } },
      }),
      userId,
      async (c) => c.json(await ops.lookups.user(c.req.valid("param").id)),
    )
    .post(
      "/v1/admin/users/:id/disconnect",
      describe({
        summary: "Close a user's connections on this node (recorded in the controls audit log)",
        description:
          "Each connection is closed with 4001: clients reconnect with a fresh credential, which passes the kill switches again. Nothing is erased.",
        tags: ["ops"],
        security: "admin",
        responses: { 200: { description: "How many connections were closed" } },
      }),
      userId,
      jsonBody(DisconnectSchema, { maxBytes: 4096, what: "disconnect", optional: true }),
      async (c) => {
        const body = c.req.valid("json");
        const actor = { service: c.get("service").name, ...(body.by ? { by: body.by } : {}) };
        return c.json(await ops.lookups.disconnect(c.req.valid("param").id, actor, body.reason));
      },
    )
    .get(
      "/v1/admin/conversations/:id",
      describe({
        summary: "A conversation: members and their read positions, head, actor state",
        tags: ["ops"],
        security: "admin",
        responses: {
          200: { description: "The conversation" },
          404: { description: "No such conversation" },
        },
      }),
      validate("param", v.object({ id: ConversationIdSchema }), { what: "conversation id" }),
      async (c) => {
        const { id } = c.req.valid("param");
        const found = await ops.lookups.conversation(id);
        if (!found) {
          throw new AppError("not_found", `No conversation ${JSON.stringify(id.slice(0, 100))}`);
        }
        return c.json(found);
      },
    );
}
