/** Ops: live actors and their XState snapshots, dead letters (admin scope). */

import { Hono } from "hono";
import * as v from "valibot";
import type { Registry } from "../actors/registry.ts";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { AppError } from "../src/errors.ts";
import type { DeliveryStore } from "../src/store/store.ts";
import { describe } from "../src/openapi.ts";
import { adminLimit, validate } from "../src/validate.ts";

const kind = v.picklist(
  ["user", "conversation", "mailer"],
  'expected "user", "conversation" or "mailer"',
);

/** Query of `GET /v1/admin/actors`. */
export const ActorsQuerySchema = v.object({ kind: v.optional(kind) });
/** Query of `GET /v1/admin/dead-letters`. */
export const DeadLettersQuerySchema = v.object({
  limit: adminLimit,
});

/** Dependencies of {@linkcode createAdminRoutes}. */
export interface AdminRoutesDeps {
  keys: ServiceKeys;
  registry: Registry;
  store: Pick<DeliveryStore, "listDeadLetters">;
}

/** `/v1/admin/actors` and `/v1/admin/dead-letters`. */
export function createAdminRoutes(deps: AdminRoutesDeps) {
  return new Hono<AppEnv>()
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
}
