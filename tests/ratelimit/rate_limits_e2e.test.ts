/**
 * Rate limits and caps end to end on a real server: one flooding key, user or IP is cut
 * at the configured rate while another is unaffected, with the KV limiter and with the
 * Redis limiter on a real `redis-server`.
 */

import assert from "node:assert/strict";
import { skipWithoutRedis, startRedis } from "../_support/redis.ts";
import { envelope, PUBLISH_KEY, SERVICE_KEY, startServer } from "../_support/server.ts";
import { connect, type Frame, type TestClient } from "../_support/ws_client.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function post(origin: string, key: string, body: unknown) {
  const res = await fetch(`${origin}/v1/events`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: await res.json() };
}

for (const limiter of ["kv", "redis"] as const) {
  Deno.test({
    ...opts,
    name:
      `a flooding service key is cut at its rate while another key publishes (${limiter} limiter)`,
    ignore: limiter === "redis" && skipWithoutRedis(),
    async fn() {
      const redis = limiter === "redis" ? await startRedis() : undefined;
      const server = await startServer({
        RELAIS_RATE_EVENTS: "5/24h",
        RELAIS_RATE_LIMITER: limiter,
        ...(redis
          ? { REDIS_URL: redis.url, RELAIS_REDIS_PREFIX: `test-${crypto.randomUUID()}` }
          : {}),
      });
      try {
        const flood = [];
        for (let i = 0; i < 8; i++) {
          flood.push(await post(server.origin, PUBLISH_KEY, envelope(["u1"])));
        }
        assert.deepEqual(flood.map((r) => r.status), [202, 202, 202, 202, 202, 429, 429, 429]);
        const refused = flood[7];
        assert.equal((refused.body.error as { code: string }).code, "rate_limited");
        const seconds = Number(refused.retryAfter);
        assert.ok(seconds >= 1 && seconds <= 86_400, `Retry-After ${refused.retryAfter}`);
        // The other key has its own budget.
        for (let i = 0; i < 5; i++) {
          assert.equal((await post(server.origin, SERVICE_KEY, envelope(["u1"]))).status, 202);
        }
      } finally {
        await server.close();
        await redis?.stop();
      }
    },
  });

  Deno.test({
    ...opts,
    name:
      `a user flooding messages gets error frames with retry_after_ms while another user is not limited (${limiter} limiter)`,
    ignore: limiter === "redis" && skipWithoutRedis(),
    async fn() {
      const redis = limiter === "redis" ? await startRedis() : undefined;
      const server = await startServer({
        RELAIS_RATE_MESSAGES: "3/24h",
        RELAIS_RATE_LIMITER: limiter,
        ...(redis
          ? { REDIS_URL: redis.url, RELAIS_REDIS_PREFIX: `test-${crypto.randomUUID()}` }
          : {}),
      });
      try {
        const { client: ana } = await server.login("ana");
        const { client: ben } = await server.login("ben");
        const send = (c: TestClient, ref: string) =>
          c.send({ type: "msg.send", conversation: "c1", text: "hi", client_id: ref, ref });
        const answers: Frame[] = [];
        for (let i = 0; i < 6; i++) {
          send(ana, `a${i}`);
          answers.push(
            await ana.next((f) => f.ref === `a${i}` && f.type === "error", 3000).catch(
              (): Frame => ({}),
            ),
          );
        }
        const limited = answers.filter((f) => f.code === "rate_limited");
        assert.equal(limited.length, 3, JSON.stringify(answers));
        assert.deepEqual(answers.slice(3).map((f) => f.code), Array(3).fill("rate_limited"));
        assert.ok(limited[0].retry_after_ms > 0 && limited[0].retry_after_ms <= 86_400_000);
        send(ben, "b0");
        const benAnswer = await ben.next((f) => f.ref === "b0" && f.type === "error", 1000)
          .catch((): Frame => ({}));
        assert.notEqual((benAnswer as { code?: string }).code, "rate_limited");
      } finally {
        await server.close();
        await redis?.stop();
      }
    },
  });
}

Deno.test({
  ...opts,
  name: "connection attempts from one IP are refused with 429 over the limit",
  async fn() {
    const server = await startServer({ RELAIS_RATE_CONNECTS: "3/24h" });
    const clients: TestClient[] = [];
    try {
      for (let i = 0; i < 3; i++) clients.push(await connect(server.wsUrl));
      await assert.rejects(connect(server.wsUrl), /WebSocket failed/);
      const sse = await fetch(`${server.origin}/v1/sse`, {
        headers: { authorization: `Bearer ${await server.token("ana")}` },
      });
      assert.equal(sse.status, 429);
      assert.ok(Number(sse.headers.get("retry-after")) >= 1);
      await sse.body?.cancel();
      // What is already connected keeps working.
      clients[0].send({ type: "ping", ref: "p" });
      assert.equal((await clients[0].next((f) => f.type === "pong")).ref, "p");
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "an address that keeps failing authentication has its failing attempts refused, never a valid credential or a service key",
  async fn() {
    const server = await startServer({ RELAIS_RATE_AUTH_FAILURES: "3/24h" });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await server.request("/v1/me/notifications", { bearer: "not-a-token" });
        assert.equal(res.status, 401);
      }
      // Past the limit, the failing attempts are refused (429 over HTTP, 4008 over WS)...
      const refused = await fetch(`${server.origin}/v1/me/notifications`, {
        headers: { authorization: "Bearer still-not-a-token" },
      });
      assert.equal(refused.status, 429);
      assert.ok(Number(refused.headers.get("retry-after")) >= 1);
      await refused.body?.cancel();
      const bad = await connect(server.wsUrl);
      bad.send({ type: "hello", token: "bad.token.here" });
      assert.equal((await bad.closed).code, 4008);
      // ...while valid credentials from the same address get in, on every path.
      const good = await server.token("ana");
      assert.equal((await server.request("/v1/me/notifications", { bearer: good })).status, 200);
      const ws = await connect(server.wsUrl);
      ws.send({ type: "hello", token: good });
      assert.equal((await ws.next((f) => f.type === "welcome")).user, "ana");
      await ws.close();
      assert.equal((await server.publish(envelope(["ana"]))).status, 202);
      assert.equal((await server.request("/healthz")).status, 200);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "failed hellos over WebSocket count towards the address's failed authentications",
  async fn() {
    const server = await startServer({ RELAIS_RATE_AUTH_FAILURES: "2/24h" });
    try {
      for (let i = 0; i < 2; i++) {
        const ws = await connect(server.wsUrl);
        ws.send({ type: "hello", token: "bad.token.here" });
        assert.equal((await ws.closed).code, 4001);
      }
      const res = await server.request("/v1/me/notifications", { bearer: "bad.token.again" });
      assert.equal(res.status, 429);
      const good = await server.request("/v1/me/notifications", {
        bearer: await server.token("a"),
      });
      assert.equal(good.status, 200);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "a user over the connection cap is refused with 4008 while another user connects",
  async fn() {
    const server = await startServer({ RELAIS_MAX_CONNECTIONS_PER_USER: "2" });
    try {
      assert.equal((await server.login("ana")).welcome.type, "welcome");
      assert.equal((await server.login("ana")).welcome.type, "welcome");
      const third = await connect(server.wsUrl);
      third.send({ type: "hello", token: await server.token("ana") });
      const closed = await third.closed;
      assert.equal(closed.code, 4008);
      assert.match(closed.reason, /Too many connections/);
      assert.equal((await server.login("ben")).welcome.type, "welcome");
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "new conversations per user are limited over HTTP",
  async fn() {
    // Any policy: only conversations actually created count, so these must be allowed.
    const server = await startServer({
      RELAIS_RATE_CONVERSATIONS: "2/1h",
      RELAIS_CONVERSATION_POLICY: "any",
    });
    try {
      const bearer = await server.token("ana");
      const statuses = [];
      for (let i = 0; i < 3; i++) {
        statuses.push(
          (await server.request("/v1/conversations", {
            method: "POST",
            bearer,
            body: { members: [`peer-${i}`] },
          })).status,
        );
      }
      assert.notEqual(statuses[0], 429);
      assert.notEqual(statuses[1], 429);
      assert.equal(statuses[2], 429);
      const other = await server.request("/v1/conversations", {
        method: "POST",
        bearer: await server.token("ben"),
        body: { members: ["peer"] },
      });
      assert.notEqual(other.status, 429);
    } finally {
      await server.close();
    }
  },
});
