/** Kill switches and their audit log (admin scope). */

import { Hono } from "hono";
import * as v from "valibot";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import {
  type Actor,
  type Control,
  ControlInputSchema,
  isActive,
  TimestampSchema,
} from "../src/controls/control.ts";
import type { Controls } from "../src/controls/controls.ts";
import { AppError } from "../src/errors.ts";
import { describe } from "../src/openapi.ts";
import { MAX_USER_ID_CHARS } from "../src/schemas/user_id.ts";
import { adminLimit, validate } from "../src/validate.ts";
import { jsonBody } from "./_json_body.ts";

/** Query of `GET /v1/admin/controls/audit`. */
export const AuditQuerySchema = v.object({
  limit: adminLimit,
  before: v.optional(TimestampSchema),
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

/**
 * A control id in a path: a scope type and a scope id. The longest is a user's, whose id
 * may be as long as the user-id rule allows; what the id names is checked with its scope.
 */
const ControlIdSchema = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength("user:".length + MAX_USER_ID_CHARS),
);

/** `GET|PUT|DELETE /v1/admin/controls`, the same by id, and `GET /v1/admin/controls/audit`. */
export function createControlRoutes(deps: ControlRoutesDeps) {
  const { controls } = deps;
  const actor = (service: string, by?: string): Actor => ({ service, ...(by ? { by } : {}) });
  const unknown = (id: string) =>
    new AppError("not_found", `Unknown control ${JSON.stringify(id.slice(0, 100))}`);

  const controlInput = jsonBody(ControlInputSchema, {
    maxBytes: deps.maxBodyBytes,
    what: "control",
  });
  const controlId = validate("param", v.object({ id: ControlIdSchema }), { what: "control id" });
  const deleteQuery = validate("query", DeleteControlQuerySchema);

  return new Hono<AppEnv>()
    .use("/v1/admin/controls", requireScope(deps.keys, "admin"))
    .use("/v1/admin/controls/*", requireScope(deps.keys, "admin"))
    .get(
      "/v1/admin/controls",
      describe({
        summary: "Every kill switch, with whether it is in force now",
        tags: ["controls"],
        security: "admin",
        responses: { 200: { description: "The switches" } },
      }),
      (c) => {
        const list = controls.list().map((control) => view(control));
        return c.json({ count: list.length, controls: list });
      },
    )
    .put(
      "/v1/admin/controls",
      describe({
        summary: "Turn features off for a scope (replaces that scope's switch)",
        description:
          "Scopes: SYSTEM, STRUCTURE, ROLE, CATEGORY (STUDENT or STAFF) or USER; features: realtime, notifications, messaging, email, push. Effect is immediate on live connections (realtime: closed with 4003 and the reason; others: a `control` frame). `until` ends the switch by itself.",
        tags: ["controls"],
        security: "admin",
        responses: { 200: { description: "Replaced" }, 201: { description: "Created" } },
      }),
      controlInput,
      async (c) => {
        const { control, created } = await controls.put(
          undefined,
          c.req.valid("json"),
          actor(c.get("service").name),
        );
        return c.json(view(control), created ? 201 : 200);
      },
    )
    .delete(
      "/v1/admin/controls",
      describe({
        summary: "Remove every kill switch",
        tags: ["controls"],
        security: "admin",
        responses: { 200: { description: "How many were removed" } },
      }),
      deleteQuery,
      async (c) => {
        const query = c.req.valid("query");
        const deleted = await controls.removeAll(
          actor(c.get("service").name, query.by),
          query.reason,
        );
        return c.json({ deleted });
      },
    )
    .get(
      "/v1/admin/controls/audit",
      describe({
        summary: "The audit log of kill switch changes (who, when, what, why), newest first",
        tags: ["controls"],
        security: "admin",
        responses: { 200: { description: "Audit entries" } },
      }),
      validate("query", AuditQuerySchema),
      async (c) => {
        const query = c.req.valid("query");
        const entries = await controls.audit({ limit: query.limit, before: query.before });
        return c.json({ count: entries.length, entries });
      },
    )
    .get(
      "/v1/admin/controls/:id",
      describe({
        summary:
          "One kill switch by id (`system`, `structure:<id>`, `role:<id>`, `category:<id>`, `user:<id>`)",
        tags: ["controls"],
        security: "admin",
        responses: { 200: { description: "The switch" }, 404: { description: "No such switch" } },
      }),
      controlId,
      (c) => {
        const { id } = c.req.valid("param");
        const control = controls.get(id);
        if (!control) throw unknown(id);
        return c.json(view(control));
      },
    )
    .put(
      "/v1/admin/controls/:id",
      describe({
        summary: "Set the kill switch of the scope the id names",
        tags: ["controls"],
        security: "admin",
        responses: { 200: { description: "Replaced" }, 201: { description: "Created" } },
      }),
      controlId,
      controlInput,
      async (c) => {
        const { control, created } = await controls.put(
          c.req.valid("param").id,
          c.req.valid("json"),
          actor(c.get("service").name),
        );
        return c.json(view(control), created ? 201 : 200);
      },
    )
    .delete(
      "/v1/admin/controls/:id",
      describe({
        summary: "Remove one kill switch",
        tags: ["controls"],
        security: "admin",
        responses: {
          200: { description: "The removed switch" },
          404: { description: "No such switch" },
        },
      }),
      controlId,
      deleteQuery,
      async (c) => {
        const { id } = c.req.valid("param");
        const query = c.req.valid("query");
        const deleted = await controls.remove(
          id,
          actor(c.get("service").name, query.by),
          query.reason,
        );
        if (!deleted) throw unknown(id);
        return c.json({ deleted: view(deleted) });
      },
    );
}
