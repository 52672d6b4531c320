/**
 * Attempts to get around authentication and authorization, over HTTP and WebSocket on a
 * real server: every one must fail, and no error body may echo a credential.
 */

import assert from "node:assert/strict";
import { exportJWK, generateKeyPair } from "jose";
import {
  signAsymmetric,
  signContext,
  signHs256,
  startJwksServer,
  unsecuredToken,
} from "../_support/auth.ts";
import {
  envelope,
  JWT_SECRET,
  PUBLISH_KEY,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";
import { connect } from "../_support/ws_client.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const GATEWAY_SECRET = "gateway-secret-0123456789-abcdefghij";
const now = () => Math.floor(Date.now() / 1000);

/** HTTP with raw headers; returns the status and the body text. */
async function raw(server: TestServer, path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.origin}${path}`, { headers });
  return { status: res.status, text: await res.text() };
}

/** A hello over a fresh socket; the close code (or "welcome"). */
async function hello(server: TestServer, frame: Record<string, unknown>) {
  const client = await connect(server.wsUrl);
  client.send({ type: "hello", ...frame });
  const outcome = await Promise.race([
    client.next((f) => f.type === "welcome", 5000).then(() => "welcome" as const),
    client.closed.then((c) => c.code),
  ]);
  await client.close();
  return outcome;
}

/** Every forged credential fails over HTTP (401, credential not echoed) and WS (4001). */
async function refusedEverywhere(server: TestServer, token: string, what: string) {
  const res = await raw(server, "/v1/me/notifications", { authorization: `Bearer ${token}` });
  assert.equal(res.status, 401, what);
  assert.ok(!res.text.includes(token), `${what}: the token is echoed`);
  assert.equal(await hello(server, { token }), 4001, what);
}

Deno.test({
  ...opts,
  name: "requests without credentials are refused on every protected route",
  async fn() {
    const server = await startServer({ RELAIS_RATE_AUTH_FAILURES: "off" });
    try {
      for (
        const path of [
          "/v1/me/notifications",
          "/v1/me/preferences",
          "/v1/me/conversations",
          "/v1/events/0193a1e2-0000-4000-8000-000000000000",
          "/v1/users/someone",
          "/v1/admin/actors",
          "/v1/admin/controls",
          "/v1/admin/controls/audit",
          "/v1/admin/dead-letters",
        ]
      ) {
        const res = await raw(server, path);
        assert.ok(res.status === 401 || res.status === 404, `${path}: ${res.status}`);
        if (res.status === 404) assert.match(res.text, /No route/, path);
      }
      const post = await server.request("/v1/events", { body: envelope(["u1"]) });
      assert.equal(post.status, 401);
      assert.equal(await hello(server, {}), 4001);
      // A socket that never says hello is closed too, and gets nothing meanwhile.
      const silent = await connect(server.wsUrl);
      silent.send({ type: "ack", id: "x", ref: "r" });
      assert.equal((await silent.next((f) => f.ref === "r")).code, "hello_required");
      await silent.close();
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "expired, wrongly signed, tampered and alg none tokens are refused over HTTP and WS",
  async fn() {
    const server = await startServer({ RELAIS_RATE_AUTH_FAILURES: "off" });
    try {
      const t = now();
      const expired = await signHs256({ sub: "ana", iat: t - 7200, exp: t - 3600 }, {
        secret: JWT_SECRET,
      });
      await refusedEverywhere(server, expired, "expired");
      const wrong = await signHs256({ sub: "ana", iat: t, exp: t + 3600 }, {
        secret: "another-secret-0123456789-abcdefghijk",
      });
      await refusedEverywhere(server, wrong, "wrong signature");
      const good = await signHs256({ sub: "ana", iat: t, exp: t + 3600 }, { secret: JWT_SECRET });
      const [h, p, s] = good.split(".");
      const payload = JSON.parse(atob(p.replaceAll("-", "+").replaceAll("_", "/")));
      const forged = btoa(JSON.stringify({ ...payload, sub: "admin" })).replaceAll("+", "-")
        .replaceAll("/", "_").replaceAll("=", "");
      await refusedEverywhere(server, `${h}.${forged}.${s}`, "tampered payload");
      await refusedEverywhere(
        server,
        unsecuredToken({ sub: "ana", iat: t, exp: t + 3600 }),
        "alg none",
      );
      await refusedEverywhere(server, "not.a.jwt", "garbage");
      // The genuine token works, so the refusals above are about the forgeries.
      assert.equal(
        (await raw(server, "/v1/me/notifications", { authorization: `Bearer ${good}` })).status,
        200,
      );
      assert.equal(await hello(server, { token: good }), "welcome");
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "a token of an unknown JWKS key id and a gateway context of an unknown kid are refused",
  async fn() {
    const { publicKey, privateKey } = await generateKeyPair("RS256");
    const jwks = await startJwksServer({
      keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" }],
    });
    const server = await startServer({
      RELAIS_JWKS_URL: jwks.url,
      RELAIS_GATEWAY_KEYS: `gw1:${GATEWAY_SECRET}`,
      RELAIS_RATE_AUTH_FAILURES: "off",
    });
    try {
      const t = now();
      const claims = { sub: "ana", iat: t, exp: t + 3600 };
      const unknownKid = await signAsymmetric(claims, privateKey, { alg: "RS256", kid: "k2" });
      await refusedEverywhere(server, unknownKid, "unknown JWKS kid");
      const known = await signAsymmetric(claims, privateKey, { alg: "RS256", kid: "k1" });
      assert.equal(await hello(server, { token: known }), "welcome");

      const context = { sub: "ana", iat: t, exp: t + 300, authorities: [], roles: [] };
      const forged = await signContext(context, { secret: GATEWAY_SECRET, kid: "gw2" });
      const res = await raw(server, "/v1/me/notifications", {
        "x-signed-context": forged.context,
        "x-context-signature": forged.signature,
        "x-context-kid": "gw2",
      });
      assert.equal(res.status, 401);
      const wrongKey = await signContext(context, { secret: "not-the-gateway-secret", kid: "gw1" });
      assert.equal(
        (await raw(server, "/v1/me/notifications", {
          "x-signed-context": wrongKey.context,
          "x-context-signature": wrongKey.signature,
          "x-context-kid": "gw1",
        })).status,
        401,
      );
      const genuine = await signContext(context, { secret: GATEWAY_SECRET, kid: "gw1" });
      assert.equal(
        (await raw(server, "/v1/me/notifications", {
          "x-signed-context": genuine.context,
          "x-context-signature": genuine.signature,
          "x-context-kid": "gw1",
        })).status,
        200,
      );
    } finally {
      await server.close();
      await jwks.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "a user can neither read nor act on another user's inbox",
  async fn() {
    const server = await startServer();
    try {
      const secret = envelope(["bob"], {
        payload: {
          fr: { title: "Pour Bob", body: "secret" },
          en: { title: "Bob", body: "secret" },
        },
        routing: { retry: { ack_required: true } },
      });
      assert.equal((await server.publish(secret)).status, 202);
      const id = (secret.metadata as { id: string }).id;
      const eve = await server.token("eve");
      const inbox = await server.request("/v1/me/notifications", { bearer: eve });
      assert.equal(inbox.status, 200);
      assert.deepEqual(inbox.body.items, []);
      assert.ok(!JSON.stringify(inbox.body).includes("secret"));
      for (const action of ["read", "ack"]) {
        const res = await server.request(`/v1/me/notifications/${id}/${action}`, {
          method: "POST",
          bearer: eve,
          body: {},
        });
        assert.equal(res.status, 404, action);
      }
      const { client } = await server.login("eve");
      client.send({ type: "ack", id, ref: "a" });
      assert.equal((await client.next((f) => f.ref === "a")).code, "not_found");
      client.send({ type: "read", id, ref: "r" });
      assert.equal((await client.next((f) => f.ref === "r")).code, "not_found");
      // A user token does not open the service routes that could show it.
      assert.equal((await server.request(`/v1/events/${id}`, { bearer: eve })).status, 401);
      assert.equal((await server.request("/v1/users/bob", { bearer: eve })).status, 401);
      // Bob's item is still unread and unacked.
      const bob = await server.request("/v1/me/notifications", {
        bearer: await server.token("bob"),
      });
      const items = bob.body.items as { id: string; read: boolean }[];
      assert.deepEqual(items.map((i) => [i.id, i.read]), [[id, false]]);
      const status = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
      assert.equal(status.body.acked, 0);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "a user token or a publish-only key cannot use the admin routes",
  async fn() {
    const server = await startServer({ RELAIS_RATE_AUTH_FAILURES: "off" });
    try {
      const user = await server.token("ana");
      const routes: [string, string][] = [
        ["GET", "/v1/admin/actors"],
        ["GET", "/v1/admin/actors/user/ana"],
        ["GET", "/v1/admin/dead-letters"],
        ["GET", "/v1/admin/controls"],
        ["PUT", "/v1/admin/controls"],
        ["DELETE", "/v1/admin/controls"],
        ["GET", "/v1/admin/controls/audit"],
        ["PUT", "/v1/admin/controls/system"],
        ["DELETE", "/v1/admin/controls/system"],
      ];
      const body = { features: ["realtime"], reason: "takeover", scope: { type: "SYSTEM" } };
      for (const [method, path] of routes) {
        const withBody = method === "PUT" ? { body } : {};
        const asUser = await server.request(path, { method, bearer: user, ...withBody });
        assert.equal(asUser.status, 401, `${method} ${path} with a user token`);
        const asPublisher = await server.request(path, {
          method,
          apiKey: PUBLISH_KEY,
          ...withBody,
        });
        assert.equal(asPublisher.status, 403, `${method} ${path} with a publish-only key`);
        assert.ok(!JSON.stringify(asPublisher.body).includes(PUBLISH_KEY));
      }
      // Nothing was switched off.
      assert.equal((await server.login("ana")).welcome.type, "welcome");
      const list = await server.request("/v1/admin/controls", { apiKey: SERVICE_KEY });
      assert.equal(list.body.count, 0);
      // A service key is not a user either.
      const asService = await server.request("/v1/me/notifications", { bearer: SERVICE_KEY });
      assert.equal(asService.status, 401);
      assert.ok(!JSON.stringify(asService.body).includes(SERVICE_KEY));
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "a token expiring during a live connection ends it with 4001",
  async fn() {
    const server = await startServer();
    try {
      const client = await connect(server.wsUrl);
      // Measures time: a 2-second token lives 1 to 2 s (its expiry is in whole seconds).
      client.send({ type: "hello", token: await server.token("ana", { ttlSeconds: 2 }) });
      await client.next((f) => f.type === "welcome");
      const closed = await client.closed;
      assert.equal(closed.code, 4001);
      assert.match(closed.reason, /expired/i);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "a user who is not a member can neither read nor post in a conversation",
  async fn() {
    const server = await startServer();
    try {
      const created = await server.request("/v1/conversations", {
        method: "POST",
        apiKey: SERVICE_KEY,
        body: { kind: "group", title: "Peer review", members: ["amy", "bob"] },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      const amy = await server.token("amy");
      const posted = await server.request(`/v1/conversations/${id}/messages`, {
        method: "POST",
        bearer: amy,
        body: { text: "secret plan", client_id: "m1" },
      });
      assert.equal(posted.status, 201, JSON.stringify(posted.body));

      const eve = await server.token("eve");
      const attempts: [string, string, unknown?][] = [
        ["GET", `/v1/conversations/${id}`],
        ["GET", `/v1/conversations/${id}/messages`],
        ["POST", `/v1/conversations/${id}/messages`, { text: "let me in", client_id: "e1" }],
        ["PATCH", `/v1/conversations/${id}/messages/1`, { text: "edited by eve" }],
        ["DELETE", `/v1/conversations/${id}/messages/1`],
        ["POST", `/v1/conversations/${id}/read`, {}],
        ["POST", `/v1/conversations/${id}/members`, { members: ["eve"] }],
        ["POST", `/v1/conversations/${id}/typing`, {}],
      ];
      for (const [method, path, body] of attempts) {
        const res = await server.request(path, {
          method,
          bearer: eve,
          ...(body === undefined ? {} : { body }),
        });
        assert.ok(res.status >= 400 && res.status < 500, `${method} ${path}: ${res.status}`);
        assert.ok(!JSON.stringify(res.body).includes("secret plan"), `${method} ${path} leaks`);
      }
      const list = await server.request("/v1/me/conversations", { bearer: eve });
      assert.ok(!JSON.stringify(list.body).includes(id));

      const { client } = await server.login("eve");
      const member = await server.login("bob");
      client.send({ type: "msg.send", conversation: id, text: "hi", client_id: "e2", ref: "s" });
      const refused = await client.next((f) => f.ref === "s" && f.type === "error");
      assert.ok(["not_member", "not_found", "forbidden"].includes(refused.code), refused.code);
      client.send({ type: "typing", conversation: id, ref: "t" });
      assert.equal((await client.next((f) => f.ref === "t" && f.type === "error")).type, "error");
      // A new message of the members never reaches eve.
      await server.request(`/v1/conversations/${id}/messages`, {
        method: "POST",
        bearer: amy,
        body: { text: "secret plan, part 2", client_id: "m2" },
      });
      // Barrier: once a member has it, a copy sent to eve would be on her socket before the
      // answer to a ping.
      await member.client.next((f) => JSON.stringify(f).includes("secret plan, part 2"));
      const leaked = await client.settled((f) => JSON.stringify(f).includes("secret plan"));
      assert.deepEqual(leaked, []);
      // Nothing eve tried landed.
      const history = await server.request(`/v1/conversations/${id}/messages`, { bearer: amy });
      const texts = JSON.stringify(history.body);
      assert.ok(!texts.includes("let me in") && !texts.includes("edited by eve"), texts);
      assert.ok(texts.includes("secret plan"));
    } finally {
      await server.close();
    }
  },
});
