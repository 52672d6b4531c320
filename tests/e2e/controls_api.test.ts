/** The kill switch admin API: validation, authorization, listing, audit log. */

import assert from "node:assert/strict";
import { PUBLISH_KEY, SERVICE_KEY, startServer } from "../_support/server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  ...opts,
  name: "the controls API creates, replaces, lists, reads and deletes switches with an audit trail",
  async fn() {
    const server = await startServer();
    try {
      const put = (path: string, body: unknown) =>
        server.request(path, { method: "PUT", apiKey: SERVICE_KEY, body });
      const created = await put("/v1/admin/controls", {
        scope: { type: "ROLE", id: "ROLE_STUDENT" },
        features: ["messaging"],
        reason: "Exam",
        by: "alice",
      });
      assert.equal(created.status, 201);
      assert.equal(created.body.id, "role:ROLE_STUDENT");
      assert.equal(created.body.active, true);
      const replaced = await put("/v1/admin/controls/role:ROLE_STUDENT", {
        features: ["messaging", "email"],
        reason: "Exam, extended",
      });
      assert.equal(replaced.status, 200);
      assert.deepEqual(replaced.body.features, ["messaging", "email"]);
      assert.equal(
        (await put("/v1/admin/controls/system", {
          features: ["email"],
          reason: "Relay down",
        })).status,
        201,
      );

      const list = await server.request("/v1/admin/controls", { apiKey: SERVICE_KEY });
      assert.deepEqual(
        (list.body.controls as { id: string }[]).map((c) => c.id),
        ["role:ROLE_STUDENT", "system"],
      );
      const one = await server.request("/v1/admin/controls/system", { apiKey: SERVICE_KEY });
      assert.equal(one.body.reason, "Relay down");
      const missing = await server.request("/v1/admin/controls/user:nobody", {
        apiKey: SERVICE_KEY,
      });
      assert.equal(missing.status, 404);

      const removed = await server.request("/v1/admin/controls/system?reason=Relay%20back", {
        method: "DELETE",
        apiKey: SERVICE_KEY,
      });
      assert.equal(removed.status, 200);
      const all = await server.request("/v1/admin/controls?reason=All%20clear&by=bob", {
        method: "DELETE",
        apiKey: SERVICE_KEY,
      });
      assert.deepEqual(all.body, { deleted: 1 });

      const audit = await server.request("/v1/admin/controls/audit?limit=10", {
        apiKey: SERVICE_KEY,
      });
      const entries = audit.body.entries as {
        action: string;
        control_id: string;
        actor: { service: string; by?: string };
        reason?: string;
        at: string;
        before: unknown;
        after: unknown;
      }[];
      assert.deepEqual(entries.map((e) => [e.action, e.control_id, e.reason]), [
        ["delete", "role:ROLE_STUDENT", "All clear"],
        ["delete", "system", "Relay back"],
        ["put", "system", "Relay down"],
        ["put", "role:ROLE_STUDENT", "Exam, extended"],
        ["put", "role:ROLE_STUDENT", "Exam"],
      ]);
      assert.deepEqual(entries[0].actor, { service: "test", by: "bob" });
      assert.deepEqual(entries[4].actor, { service: "test", by: "alice" });
      assert.equal(entries[4].before, null);
      assert.ok(Date.parse(entries[0].at) >= Date.parse(entries[4].at));
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "the controls API refuses invalid switches with the field path",
  async fn() {
    const server = await startServer();
    try {
      const cases: [string, unknown, string][] = [
        ["/v1/admin/controls", { features: ["email"], reason: "x" }, "scope"],
        [
          "/v1/admin/controls",
          { scope: { type: "GALAXY" }, features: ["email"], reason: "x" },
          "scope.type",
        ],
        [
          "/v1/admin/controls",
          { scope: { type: "USER" }, features: ["email"], reason: "x" },
          "scope.id",
        ],
        [
          "/v1/admin/controls",
          { scope: { type: "SYSTEM" }, features: [], reason: "x" },
          "features",
        ],
        [
          "/v1/admin/controls",
          { scope: { type: "SYSTEM" }, features: ["chat"], reason: "x" },
          "features.0",
        ],
        ["/v1/admin/controls", { scope: { type: "SYSTEM" }, features: ["email"] }, "reason"],
        ["/v1/admin/controls", {
          scope: { type: "SYSTEM" },
          features: ["email"],
          reason: "x",
          until: "tomorrow",
        }, "until"],
        ["/v1/admin/controls", {
          scope: { type: "SYSTEM" },
          features: ["email"],
          reason: "x",
          until: "2001-01-01T00:00:00Z",
        }, "until"],
        ["/v1/admin/controls/user:ana", {
          scope: { type: "USER", id: "ben" },
          features: ["email"],
          reason: "x",
        }, "scope"],
        ["/v1/admin/controls/planet:mars", { features: ["email"], reason: "x" }, "id"],
      ];
      for (const [path, body, field] of cases) {
        const res = await server.request(path, { method: "PUT", apiKey: SERVICE_KEY, body });
        assert.equal(res.status, 400, JSON.stringify(body));
        const error = res.body.error as { code: string; details: { path: string }[] };
        assert.equal(error.code, "validation_failed");
        assert.equal(error.details[0].path, field, JSON.stringify(body));
      }
      const list = await server.request("/v1/admin/controls", { apiKey: SERVICE_KEY });
      assert.equal(list.body.count, 0);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "only an admin key reaches the controls API",
  async fn() {
    const server = await startServer();
    try {
      const body = { scope: { type: "SYSTEM" }, features: ["email"], reason: "x" };
      const anonymous = await server.request("/v1/admin/controls", { method: "PUT", body });
      assert.equal(anonymous.status, 401);
      const publisher = await server.request("/v1/admin/controls", {
        method: "PUT",
        apiKey: PUBLISH_KEY,
        body,
      });
      assert.equal(publisher.status, 403);
      const user = await server.request("/v1/admin/controls", {
        bearer: await server.token("ana"),
      });
      assert.equal(user.status, 401);
      const audit = await server.request("/v1/admin/controls/audit", { apiKey: PUBLISH_KEY });
      assert.equal(audit.status, 403);
      const list = await server.request("/v1/admin/controls", { apiKey: SERVICE_KEY });
      assert.equal(list.body.count, 0);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "an ISO timestamp no clock reads (an offset of hours alone) is refused with 400 naming until or before",
  async fn() {
    const server = await startServer();
    try {
      // The ISO pattern admits "+01", which Date.parse cannot read: the switch failed with
      // a 500, and the audit log paged by a bound no store can compare.
      const unreadable = "2099-01-01T00:00:00+01";
      const put = await server.request("/v1/admin/controls", {
        method: "PUT",
        apiKey: SERVICE_KEY,
        body: {
          scope: { type: "USER", id: "ana" },
          features: ["email"],
          reason: "x",
          until: unreadable,
        },
      });
      assert.equal(put.status, 400, JSON.stringify(put.body));
      const putError = put.body.error as { code: string; details: { path: string }[] };
      assert.equal(putError.code, "validation_failed");
      assert.equal(putError.details[0].path, "until");

      const ok = await server.request("/v1/admin/controls", {
        method: "PUT",
        apiKey: SERVICE_KEY,
        body: { scope: { type: "USER", id: "ana" }, features: ["email"], reason: "x" },
      });
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      const audit = await server.request(
        `/v1/admin/controls/audit?before=${encodeURIComponent(unreadable)}`,
        { apiKey: SERVICE_KEY },
      );
      assert.equal(audit.status, 400, JSON.stringify(audit.body));
      const auditError = audit.body.error as { code: string; details: { path: string }[] };
      assert.equal(auditError.code, "validation_failed");
      assert.equal(auditError.details[0].path, "before");
      const readable = await server.request(
        `/v1/admin/controls/audit?before=${encodeURIComponent("2099-01-01T00:00:00+01:00")}`,
        { apiKey: SERVICE_KEY },
      );
      assert.equal(readable.body.count, 1);
    } finally {
      await server.close();
    }
  },
});
