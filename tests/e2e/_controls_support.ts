/** Helpers of the kill switch end-to-end tests: two users in different scopes, live. */

import assert from "node:assert/strict";
import { SERVICE_KEY, type TestServer } from "../_support/server.ts";
import { connect, type Frame, type TestClient } from "../_support/ws_client.ts";

/** A directory user with what the kill switch scopes look at. */
export interface ScopedUser {
  id: string;
  category: "STUDENT" | "STAFF";
  roles: string[];
  structures: string[];
}

/** A student of univ-a: every non-SYSTEM scope below targets her. */
export const ANA: ScopedUser = {
  id: "ana",
  category: "STUDENT",
  roles: ["ROLE_STUDENT"],
  structures: ["univ-a"],
};
/** A staff member of univ-b: in none of ANA's scopes. */
export const BEN: ScopedUser = {
  id: "ben",
  category: "STAFF",
  roles: ["ROLE_STAFF"],
  structures: ["univ-b"],
};

/** Every scope type, each covering ANA (and, for SYSTEM only, BEN). */
export const SCOPES = [
  { type: "STRUCTURE", id: "univ-a" },
  { type: "ROLE", id: "ROLE_STUDENT" },
  { type: "CATEGORY", id: "STUDENT" },
  { type: "USER", id: "ana" },
  { type: "SYSTEM" },
] as const;

/** A scope from {@linkcode SCOPES}. */
export type TestScope = (typeof SCOPES)[number];

/** The control id of a scope. */
export function idOf(scope: TestScope): string {
  return scope.type === "SYSTEM" ? "system" : `${scope.type.toLowerCase()}:${scope.id}`;
}

/** Writes the users into the directory. */
export async function addUsers(server: TestServer, users: ScopedUser[] = [ANA, BEN]) {
  for (const u of users) {
    const res = await server.request(`/v1/users/${u.id}`, {
      method: "PUT",
      apiKey: SERVICE_KEY,
      body: {
        email: `${u.id}@example.org`,
        name: u.id,
        category: u.category,
        roles: u.roles,
        structures: u.structures,
      },
    });
    assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.body));
  }
}

/** A user's token carrying the roles and structures claims. */
export function tokenOf(server: TestServer, user: ScopedUser, ttlSeconds = 3600) {
  return server.relais.auth.signDevToken(user.id, {
    roles: user.roles,
    structures: user.structures,
    ttlSeconds,
  });
}

/** Opens a socket and says hello; the first frame is the welcome or the socket closes. */
export async function open(
  server: TestServer,
  user: ScopedUser,
  clients: TestClient[],
): Promise<{ client: TestClient; welcome?: Frame; closed?: { code: number; reason: string } }> {
  const client = await connect(server.wsUrl);
  clients.push(client);
  client.send({ type: "hello", token: await tokenOf(server, user) });
  const outcome = await Promise.race([
    client.next((f) => f.type === "welcome", 5000).then((welcome) => ({ welcome })),
    client.closed.then((closed) => ({ closed })),
  ]);
  return { client, ...outcome };
}

/** Sets a kill switch through the admin API. */
export async function setSwitch(
  server: TestServer,
  scope: TestScope,
  features: string[],
  reason: string,
  until?: string,
) {
  const res = await server.request("/v1/admin/controls", {
    method: "PUT",
    apiKey: SERVICE_KEY,
    body: { scope, features, reason, ...(until ? { until } : {}) },
  });
  assert.ok(res.status === 201 || res.status === 200, JSON.stringify(res.body));
  return res.body;
}

/** Removes a kill switch through the admin API. */
export async function clearSwitch(server: TestServer, scope: TestScope) {
  const res = await server.request(`/v1/admin/controls/${encodeURIComponent(idOf(scope))}`, {
    method: "DELETE",
    apiKey: SERVICE_KEY,
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

/** The next `control` frame a client receives. */
export function nextControl(client: TestClient, timeoutMs = 3000) {
  return client.next((f) => f.type === "control", timeoutMs);
}

/** Whether a socket is still open (its close event has not come). */
export function isOpen(client: TestClient) {
  return client.socket.readyState === WebSocket.OPEN;
}
