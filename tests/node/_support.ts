/**
 * Helpers of the Node suite: talk to a relais child process (on Node or Deno) over the
 * network only, and skip the suite with one line when `node` is missing (required in CI).
 */

import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { type ChildServer, nodeAvailable } from "../_support/process.ts";
import { skipUnless } from "../_support/requirements.ts";
import { JWT_SECRET, SERVICE_KEY } from "../_support/server.ts";
import { connect, type Frame, type TestClient } from "../_support/ws_client.ts";

const version = await nodeAvailable();
const major = Number(/^v(\d+)\./.exec(version ?? "")?.[1] ?? 0);

/** The `ignore` flag of the Node suite: set (after one line) when Node 20+ is missing outside CI. */
export const WITHOUT_NODE: boolean = skipUnless(major >= 20, {
  tests: "the Node suite (tests/node)",
  missing: version ? `node ${version} is older than 20` : "node is not on the PATH",
  install: "Node.js 20 or later from https://nodejs.org or the distribution's nodejs package",
});

/** A user token signed with the test servers' secret. */
export function token(user: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(user).setIssuedAt()
    .setExpirationTime("1h").sign(new TextEncoder().encode(JWT_SECRET));
}

/** One HTTP exchange with a child server: a service key, a user's bearer or nothing. */
export async function request(
  server: ChildServer,
  path: string,
  init: { method?: string; user?: string; apiKey?: string; body?: unknown } = {},
): Promise<{ status: number; body: Frame }> {
  const headers: Record<string, string> = {};
  if (init.user) headers.authorization = `Bearer ${await token(init.user)}`;
  if (init.apiKey) headers["x-api-key"] = init.apiKey;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${server.origin}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

/** Publishes an envelope with the all-scopes service key; asserts the 202. */
export async function publish(server: ChildServer, envelope: Record<string, unknown>) {
  const res = await request(server, "/v1/events", { apiKey: SERVICE_KEY, body: envelope });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  return (envelope.metadata as { id: string }).id;
}

/** Opens a socket and says hello; resolves with the welcome (or the close, if it closes). */
export async function login(
  server: ChildServer,
  user: string,
  hello: Record<string, unknown> = {},
): Promise<{ client: TestClient; welcome?: Frame; closed?: { code: number; reason: string } }> {
  const client = await connect(server.wsUrl);
  client.send({ type: "hello", token: await token(user), ...hello });
  const outcome = await Promise.race([
    client.next((f) => f.type === "welcome", 10_000).then((welcome) => ({ welcome })),
    client.closed.then((closed) => ({ closed })),
  ]);
  return { client, ...outcome };
}
