/** Kill switches and their audit log (admin scope). */

import { Hono } from "hono";
import * as v from "valibot";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { readJson } from "../src/body.ts";
import { type Actor, type Control, ControlInputSchema, isActive } from "../src/controls/control.ts";
import type { Controls } from "../src/controls/controls.ts";
import { AppError } from "../src/errors.ts";
import { adminLimit, parseOrThrow } from "../src/validate.ts";

/** Query of `GET /v1/admin/controls/audit`. */
export const AuditQuerySchema = v.object({
  limit: adminLimit,
  before: v.optional(v.pipe(v.string(), v.isoTimestamp("expected an ISO 8601 timestamp"))),
});

/** Query of the `DELETE` operations: why, and who (for the audit log). */
export const DeleteControlQuerySchema = v.object({
  reason: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(500))),
  by: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(200))),
});

/** Dependencies of {@linkcode createControlRoutes}. */
export interface ControlRoutesDeps {
  keys: ServiceKeys;
  controls: Controls;
  maxBodyBytes: number;
}

/** A control as the API shows it: with whether it is in force now. */
function view(control: Control, now = Date.now()) {
  return { ...control, active: isActive(control, now) };
}

/** A control id in a path: a scope type and a scope id (at most 200 characters). */
const ControlIdSchema = v.pipe(v.string(), v.minLength(1), v.maxLength(220));
const controlId = (raw: string) => parseOrThrow(ControlIdSchema, raw, "control id");

/** `GET|PUT|DELETE /v1/admin/controls`, the same by id, and `GET /v1/admin/controls/audit`. */
export function createControlRoutes(deps: ControlRoutesDeps) {
  const { controls } = deps;
  const actor = (service: string, by?: string): Actor => ({ service, ...(by ? { by } : {}) });
  const unknown = (id: string) =>
    new AppError("not_found", `Unknown control ${JSON.stringify(id.slice(0, 100))}`);

  return new Hono<AppEnv>()
    .use("/v1/admin/controls", requireScope(deps.keys, "admin"))
    .use("/v1/admin/controls/*", requireScope(deps.keys, "admin"))
    .get("/v1/admin/controls", (c) => {
      const list = controls.list().map((control) => view(control));
      return c.json({ count: list.length, controls: list });
    })
    .put("/v1/admin/controls", async (c) => {
      const input = parseOrThrow(
        ControlInputSchema,
        await readJson(c, deps.maxBodyBytes),
        "control",
      );
      const { control, created } = await controls.put(
        undefined,
        input,
        actor(c.var.service.name),
      );
      return c.json(view(control), created ? 201 : 200);
    })
    .delete("/v1/admin/controls", async (c) => {
      const query = parseOrThrow(DeleteControlQuerySchema, c.req.query(), "query");
      const deleted = await controls.removeAll(actor(c.var.service.name, query.by), query.reason);
      return c.json({ deleted });
    })
    .get("/v1/admin/controls/audit", async (c) => {
      const query = parseOrThrow(AuditQuerySchema, c.req.query(), "query");
      const entries = await controls.audit({ limit: query.limit, before: query.before });
      return c.json({ count: entries.length, entries });
    })
    .get("/v1/admin/controls/:id", (c) => {
      const id = controlId(c.req.param("id"));
      const control = controls.get(id);
      if (!control) throw unknown(id);
      return c.json(view(control));
    })
    .put("/v1/admin/controls/:id", async (c) => {
      const input = parseOrThrow(
        ControlInputSchema,
        await readJson(c, deps.maxBodyBytes),
        "control",
      );
      const { control, created } = await controls.put(
        controlId(c.req.param("id")),
        input,
        actor(c.var.service.name),
      );
      return c.json(view(control), created ? 201 : 200);
    })
    .delete("/v1/admin/controls/:id", async (c) => {
      const id = controlId(c.req.param("id"));
      const query = parseOrThrow(DeleteControlQuerySchema, c.req.query(), "query");
      const deleted = await controls.remove(id, actor(c.var.service.name, query.by), query.reason);
      if (!deleted) throw unknown(id);
      return c.json({ deleted: view(deleted) });
    });
}
