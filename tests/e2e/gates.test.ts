/**
 * The gates in front of user routes and transports, end to end on a real server: kill
 * switches and limits apply to the principal the route serves, every transport passes
 * the same connection cap, per-IP limits follow trusted proxies only, and memberships
 * come from the directory.
 */

import assert from "node:assert/strict";
import { eventually, SERVICE_KEY, startServer, type TestServer } from "../_support/server.ts";
import { openSse, type SseClient } from "../_support/sse_client.ts";
import { connect } from "../_support/ws_client.ts";
import { signContext } from "../_support/auth.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function putUser(server: TestServer, id: string, entry: Record<string, unknown>) {
  const res = await server.request(`/v1/users/${id}`, {
    method: "PUT",
    apiKey: SERVICE_KEY,
    body: { email: `${id}@univ.test`, name: id, ...entry },
  });
  assert.ok(res.status === 200 || res.status === 201, JSON.stringify(res.body));
}

async function fetchJson(
  server: TestServer,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
) {
  const res = await fetch(`${server.origin}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers: {
      ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      ...init.headers,
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

Deno.test({
  ...opts,
  name: "a junk X-API-Key beside a bearer token neither bypasses a kill switch nor a rate limit",
  async fn() {
    const server = await startServer({
      RELAIS_RATE_MESSAGES: "5/24h",
      RELAIS_CONVERSATION_POLICY: "any",
    });
    try {
      const ana = await server.token("ana");
      const created = await server.request("/v1/conversations", {
        bearer: ana,
        body: { members: ["ben"] },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id as string;
      const send = (headers: Record<string, string>, text: string) =>
        fetchJson(server, `/v1/conversations/${id}/messages`, {
          headers: { authorization: `Bearer ${ana}`, ...headers },
          body: { text },
        });

      // Mixed credentials are refused outright, with the header named.
      const mixed = await send({ "x-api-key": "x" }, "hello");
      assert.equal(mixed.status, 400);
      assert.equal(mixed.body.error.code, "invalid_request");
      assert.equal(mixed.body.error.details[0].path, "X-API-Key");
      const inbox = await fetchJson(server, "/v1/me/notifications", {
        headers: { authorization: `Bearer ${ana}`, "x-api-key": "x" },
      });
      assert.equal(inbox.status, 400);

      // Seven sends with a junk key among seven without: the junk ones are refused and
      // the limit (5) holds over the others.
      const statuses: number[] = [];
      for (let i = 0; i < 14; i++) {
        statuses.push((await send(i % 2 ? { "x-api-key": "x" } : {}, `m${i}`)).status);
      }
      const count = (status: number) => statuses.filter((s) => s === status).length;
      assert.deepEqual([count(201), count(429), count(400)], [5, 2, 7], JSON.stringify(statuses));

      // A switched-off user is refused on the route, with or without a junk key.
      const off = await server.request("/v1/admin/controls", {
        method: "PUT",
        apiKey: SERVICE_KEY,
        body: { scope: { type: "USER", id: "ana" }, features: ["messaging"], reason: "Abuse" },
      });
      assert.equal(off.status, 201, JSON.stringify(off.body));
      for (const headers of [{}, { "x-api-key": "x" }] as Record<string, string>[]) {
        const res = await send(headers, "while off");
        assert.ok(res.status === 403 || res.status === 400, `${res.status}`);
        assert.notEqual(res.status, 201);
      }
      assert.equal((await send({}, "while off")).body.error.code, "feature_disabled");
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "SSE, poll and WebSocket connections of one user all count against one cap",
  async fn() {
    const server = await startServer({ RELAIS_MAX_CONNECTIONS_PER_USER: "3" });
    const streams: SseClient[] = [];
    try {
      const token = await server.token("ana");
      const auth = { authorization: `Bearer ${token}` };
      // Many SSE streams at once: exactly the cap gets in, however they interleave; the
      // others are told why in a close frame (an EventSource cannot read a status).
      const opened = await Promise.all(
        Array.from({ length: 8 }, () => openSse(`${server.origin}/v1/sse`, auth)),
      );
      streams.push(...opened);
      const first = await Promise.all(
        opened.map((s) => s.next((e) => e.frame.type === "welcome" || e.frame.type === "close")),
      );
      const welcomed = opened.filter((_, i) => first[i].frame.type === "welcome");
      const refused = first.filter((e) => e.frame.type === "close");
      assert.equal(welcomed.length, 3);
      assert.equal(refused.length, 5);
      for (const e of refused) {
        assert.equal(e.frame.code, 4008);
        assert.match(e.frame.reason, /Too many connections/);
      }

      // A new poll session and a WebSocket are refused too while the cap is full.
      const poll = await fetchJson(server, "/v1/poll?timeout=0", { headers: auth });
      assert.equal(poll.status, 429);
      const ws = await connect(server.wsUrl);
      ws.send({ type: "hello", token });
      assert.equal((await ws.closed).code, 4008);

      // Closing one stream makes room for exactly one more connection, of any transport.
      await welcomed[0].close();
      // The server notices the closed stream when its socket closes.
      const again = await eventually(
        async () => {
          const res = await fetchJson(server, "/v1/poll?timeout=0", { headers: auth });
          return res.status === 429 ? undefined : res;
        },
        3000,
        "room for one more connection",
      );
      assert.equal(again.status, 200);
      const other = await openSse(`${server.origin}/v1/sse`, auth);
      streams.push(other);
      assert.equal((await other.next()).frame.code, 4008);
      // Another user is not affected.
      const ben = await openSse(`${server.origin}/v1/sse`, {
        authorization: `Bearer ${await server.token("ben")}`,
      });
      streams.push(ben);
      assert.equal((await ben.next()).frame.type, "welcome");
    } finally {
      await Promise.all(streams.map((s) => s.close()));
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "per-IP limits use X-Forwarded-For from a trusted proxy only",
  async fn() {
    const failFrom = (server: TestServer, forwarded: string) =>
      fetchJson(server, "/v1/me/notifications", {
        headers: { authorization: "Bearer nope", "x-forwarded-for": forwarded },
      });

    // Behind a trusted proxy, each client address has its own count.
    const proxied = await startServer({
      RELAIS_RATE_AUTH_FAILURES: "2/24h",
      RELAIS_TRUSTED_PROXIES: "127.0.0.1/32, 10.0.0.0/8",
    });
    try {
      for (let i = 0; i < 2; i++) {
        assert.equal((await failFrom(proxied, "203.0.113.5")).status, 401);
      }
      assert.equal((await failFrom(proxied, "203.0.113.5")).status, 429);
      // Another client behind the same proxy (and a chain through a second trusted hop).
      assert.equal((await failFrom(proxied, "203.0.113.6")).status, 401);
      assert.equal((await failFrom(proxied, "203.0.113.6, 10.1.2.3")).status, 401);
      assert.equal((await failFrom(proxied, "203.0.113.6 , 10.1.2.3")).status, 429);
      // A client cannot pick its address by prepending entries: the right-most
      // untrusted one counts.
      assert.equal((await failFrom(proxied, "198.51.100.1, 203.0.113.5")).status, 429);
    } finally {
      await proxied.close();
    }

    // Without trusted proxies the header is ignored: every attempt is the peer's.
    const direct = await startServer({ RELAIS_RATE_AUTH_FAILURES: "2/24h" });
    try {
      assert.equal((await failFrom(direct, "203.0.113.5")).status, 401);
      assert.equal((await failFrom(direct, "203.0.113.6")).status, 401);
      assert.equal((await failFrom(direct, "203.0.113.7")).status, 429);
    } finally {
      await direct.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "a user behind the gateway starts a conversation with someone of their institution",
  async fn() {
    const gatewayKey = "gateway-secret-0123456789-abcdefghij";
    const server = await startServer({ RELAIS_GATEWAY_KEYS: `gw1:${gatewayKey}` });
    try {
      await putUser(server, "marie", { structures: ["univ-lyon"], roles: ["ROLE_STUDENT"] });
      await putUser(server, "paul", { structures: ["univ-lyon"], roles: ["ROLE_TEACHER"] });
      await putUser(server, "zoe", { structures: ["univ-nantes"] });
      const now = Math.floor(Date.now() / 1000);
      // The gateway's context carries no structures.
      const context = await signContext(
        { sub: "marie", iat: now, exp: now + 300, authorities: [], roles: [] },
        { secret: gatewayKey, kid: "gw1" },
      );
      const headers = {
        "x-signed-context": context.context,
        "x-context-signature": context.signature,
        "x-context-kid": context.kid,
      };
      const same = await fetchJson(server, "/v1/conversations", {
        headers,
        body: { members: ["paul"] },
      });
      assert.equal(same.status, 201, JSON.stringify(same.body));
      const other = await fetchJson(server, "/v1/conversations", {
        headers,
        body: { members: ["zoe"] },
      });
      assert.equal(other.status, 403);

      // A JWT without a structures claim is judged on the directory too, and so are the
      // kill switches: a STRUCTURE switch reaches her.
      const jwt = await server.token("marie");
      const direct = await server.request("/v1/conversations", {
        bearer: jwt,
        body: { members: ["paul"], kind: "group", title: "Projet" },
      });
      assert.equal(direct.status, 201, JSON.stringify(direct.body));
      const off = await server.request("/v1/admin/controls", {
        method: "PUT",
        apiKey: SERVICE_KEY,
        body: {
          scope: { type: "STRUCTURE", id: "univ-lyon" },
          features: ["notifications"],
          reason: "Maintenance",
        },
      });
      assert.equal(off.status, 201, JSON.stringify(off.body));
      const inbox = await fetchJson(server, "/v1/me/notifications", { headers });
      assert.equal(inbox.status, 403);
      assert.equal(inbox.body.error.code, "feature_disabled");
    } finally {
      await server.close();
    }
  },
});
