/** Ops: live actors and their XState snapshots, dead letters (admin scope). */

import { Hono } from "hono";
import * as v from "valibot";
import type { ActorKind, Registry } from "../actors/registry.ts";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { AppError } from "../src/errors.ts";
import type { DeliveryStore } from "../src/store/store.ts";
import { adminLimit, parseOrThrow } from "../src/validate.ts";

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
    .get("/v1/admin/actors", (c) => {
      const query = parseOrThrow(ActorsQuerySchema, c.req.query(), "query");
      const actors = deps.registry.list(query.kind);
      return c.json({ count: actors.length, actors });
    })
    .get("/v1/admin/actors/:kind/:id", (c) => {
      const k = parseOrThrow(kind, c.req.param("kind"), "actor kind") as ActorKind;
      const id = c.req.param("id");
      const detail = deps.registry.inspect(k, id);
      if (!detail) throw new AppError("not_found", `No live ${k} actor "${id.slice(0, 100)}"`);
      return c.json(detail);
    })
    .get("/v1/admin/dead-letters", async (c) => {
      const query = parseOrThrow(DeadLettersQuerySchema, c.req.query(), "query");
      const items = await deps.store.listDeadLetters({ limit: query.limit });
      return c.json({ count: items.length, items });
    });
}
