import assert from "node:assert/strict";
import { Hono } from "hono";
import { requireScope, requireUser } from "../../src/auth/middleware.ts";
import type { AppEnv } from "../../src/auth/principal.ts";
import { createServiceKeys } from "../../src/auth/service_keys.ts";
import { createTickets } from "../../src/auth/tickets.ts";
import { createUserAuth } from "../../src/auth/user_auth.ts";
import { AppError, errorBody } from "../../src/errors.ts";
import { authConfig, NOW, NOW_S, signContext, signHs256 } from "../_support/auth.ts";
import { MemoryTicketStore } from "../_support/memory_ticket_store.ts";

const GATEWAY = { secret: "gateway-secret-0123456789", kid: "gw1" };
const PUBLISHER_KEY = "pk_live_0123456789abcdef";
const ADMIN_KEY = "ops_0123456789abcdef0123";

function buildApp() {
  const auth = createUserAuth(
    authConfig({ gatewayKeys: { [GATEWAY.kid]: GATEWAY.secret } }),
    { now: () => NOW },
  );
  const tickets = createTickets(new MemoryTicketStore(), { now: () => NOW });
  const keys = createServiceKeys([
    { name: "portfolio-api", key: PUBLISHER_KEY, scopes: ["events:publish"] },
    { name: "ops", key: ADMIN_KEY, scopes: ["admin"] },
  ]);
  const app = new Hono<AppEnv>()
    .get("/me", requireUser({ auth, tickets }), (c) => c.json(c.var.user))
    .get("/sse", requireUser({ auth, tickets }, { allowTicket: true }), (c) => c.json(c.var.user))
    .post("/events", requireScope(keys, "events:publish"), (c) => c.json(c.var.service))
    .get("/admin", requireScope(keys, "admin"), (c) => c.json(c.var.service));
  app.onError((error, c) => {
    if (error instanceof AppError) return c.json(errorBody(error), error.status);
    return c.json({ error: { code: "internal", message: String(error) } }, 500);
  });
  return { app, tickets };
}

async function errorOf(response: Response) {
  const body = await response.json();
  return { status: response.status, code: body.error.code, message: body.error.message };
}

Deno.test("require user accepts a bearer JWT and exposes the user", async () => {
  const { app } = buildApp();
  const token = await signHs256({ sub: "u1", roles: ["ROLE_STAFF"] });

  const res = await app.request("/me", { headers: { Authorization: `Bearer ${token}` } });

  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {
    kind: "user",
    id: "u1",
    roles: ["ROLE_STAFF"],
    structures: [],
    expiresAt: (NOW_S + 3600) * 1000,
  });
});

Deno.test("require user accepts the lowercase bearer scheme", async () => {
  const { app } = buildApp();
  const token = await signHs256({ sub: "u1" });

  const res = await app.request("/me", { headers: { Authorization: `bearer ${token}` } });

  assert.equal(res.status, 200);
});

Deno.test("require user answers 401 for a missing credential", async () => {
  const { app } = buildApp();

  const error = await errorOf(await app.request("/me"));

  assert.deepEqual([error.status, error.code], [401, "unauthenticated"]);
  assert.match(error.message, /^Missing credentials: /);
});

Deno.test("require user answers 401 for an invalid or expired JWT", async () => {
  const { app } = buildApp();
  const expired = await signHs256({ sub: "u1", exp: NOW_S - 1 });

  const bad = await errorOf(
    await app.request("/me", { headers: { Authorization: "Bearer x.y.z" } }),
  );
  const old = await errorOf(
    await app.request("/me", { headers: { Authorization: `Bearer ${expired}` } }),
  );

  assert.deepEqual([bad.status, bad.code], [401, "unauthenticated"]);
  assert.deepEqual([old.status, old.message], [401, "Token has expired"]);
});

Deno.test("require user answers 401 for a non-bearer authorization scheme", async () => {
  const { app } = buildApp();

  const error = await errorOf(
    await app.request("/me", { headers: { Authorization: "Basic dTE6cGFzcw==" } }),
  );

  assert.equal(error.status, 401);
  assert.equal(error.message, 'Invalid Authorization header: expected "Bearer <credential>"');
});

Deno.test("require user accepts the gateway's signed context headers", async () => {
  const { app } = buildApp();
  const headers = await signContext(
    { sub: "u7", iat: NOW_S, exp: NOW_S + 300, authorities: ["ROLE_STUDENT"], roles: [] },
    GATEWAY,
  );

  const res = await app.request("/me", {
    headers: {
      "X-Signed-Context": headers.context,
      "X-Context-Signature": headers.signature,
      "X-Context-Kid": headers.kid,
    },
  });

  assert.equal(res.status, 200);
  const user = await res.json();
  assert.equal(user.id, "u7");
  assert.deepEqual(user.roles, ["ROLE_STUDENT"]);
});

Deno.test("require user prefers the signed context over a forwarded bearer token", async () => {
  const { app } = buildApp();
  const headers = await signContext(
    { sub: "u7", iat: NOW_S, exp: NOW_S + 300, authorities: [], roles: [] },
    GATEWAY,
  );

  const res = await app.request("/me", {
    headers: {
      Authorization: "Bearer opaque-upstream-token",
      "X-Signed-Context": headers.context,
      "X-Context-Signature": headers.signature,
      "X-Context-Kid": headers.kid,
    },
  });

  assert.equal(res.status, 200);
  assert.equal((await res.json()).id, "u7");
});

Deno.test("require user answers 401 for a signed context with a bad signature", async () => {
  const { app } = buildApp();
  const headers = await signContext(
    { sub: "u7", iat: NOW_S, exp: NOW_S + 300, authorities: [], roles: [] },
    { ...GATEWAY, secret: "wrong" },
  );

  const error = await errorOf(
    await app.request("/me", {
      headers: {
        "X-Signed-Context": headers.context,
        "X-Context-Signature": headers.signature,
        "X-Context-Kid": headers.kid,
      },
    }),
  );

  assert.equal(error.status, 401);
  assert.equal(error.message, "Invalid signed context: signature verification failed");
});

Deno.test("require user accepts a ticket once where tickets are allowed", async () => {
  const { app, tickets } = buildApp();
  const { ticket } = await tickets.issue({
    kind: "user",
    id: "u9",
    roles: [],
    structures: [],
    expiresAt: NOW + 3_600_000,
  });

  const first = await app.request(`/sse?ticket=${ticket}`);
  const second = await errorOf(await app.request(`/sse?ticket=${ticket}`));

  assert.equal(first.status, 200);
  assert.equal((await first.json()).id, "u9");
  assert.equal(second.status, 401);
  assert.equal(second.message, "Invalid ticket: unknown, expired or already used");
});

Deno.test("require user ignores tickets where they are not allowed", async () => {
  const { app, tickets } = buildApp();
  const { ticket } = await tickets.issue({ kind: "user", id: "u9", roles: [], structures: [] });

  const refused = await errorOf(await app.request(`/me?ticket=${ticket}`));
  const stillValid = await app.request(`/sse?ticket=${ticket}`);

  assert.equal(refused.status, 401);
  assert.equal(stillValid.status, 200);
});

Deno.test("require scope accepts a key with the scope from X-API-Key or bearer", async () => {
  const { app } = buildApp();

  const viaHeader = await app.request("/events", {
    method: "POST",
    headers: { "X-API-Key": PUBLISHER_KEY },
  });
  const viaBearer = await app.request("/events", {
    method: "POST",
    headers: { Authorization: `Bearer ${PUBLISHER_KEY}` },
  });

  assert.equal(viaHeader.status, 200);
  assert.deepEqual(await viaHeader.json(), {
    kind: "service",
    name: "portfolio-api",
    scopes: ["events:publish"],
  });
  assert.equal(viaBearer.status, 200);
});

Deno.test("require scope answers 401 for a missing or unknown key without echoing it", async () => {
  const { app } = buildApp();
  const guess = "guess_0123456789abcdef";

  const missing = await errorOf(await app.request("/admin"));
  const unknown = await errorOf(await app.request("/admin", { headers: { "X-API-Key": guess } }));

  assert.deepEqual([missing.status, missing.code], [401, "unauthenticated"]);
  assert.deepEqual([unknown.status, unknown.code], [401, "unauthenticated"]);
  assert.equal(unknown.message, "Unknown service key");
});

Deno.test("require scope answers 403 naming the key and the missing scope", async () => {
  const { app } = buildApp();

  const error = await errorOf(
    await app.request("/admin", { headers: { "X-API-Key": PUBLISHER_KEY } }),
  );

  assert.deepEqual(error, {
    status: 403,
    code: "forbidden",
    message: 'Service key "portfolio-api" lacks scope "admin"',
  });
});

Deno.test("require scope does not let the admin scope stand in for another scope", async () => {
  const { app } = buildApp();

  const error = await errorOf(
    await app.request("/events", { method: "POST", headers: { "X-API-Key": ADMIN_KEY } }),
  );

  assert.equal(error.status, 403);
  assert.equal(error.message, 'Service key "ops" lacks scope "events:publish"');
});
