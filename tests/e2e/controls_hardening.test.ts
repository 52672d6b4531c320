/** Hardening at the HTTP edge: security headers, CORS and the Origin allow-list on WS and SSE. */

import assert from "node:assert/strict";
import { startServer, type TestServer } from "../_support/server.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const PORTFOLIO = "https://portfolio.example.org";

/** A WebSocket upgrade by hand, to set the Origin header; the status code. */
async function upgradeStatus(server: TestServer, origin: string): Promise<number> {
  const port = Number(new URL(server.origin).port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(
      `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${btoa("0123456789abcdef")}\r\nSec-WebSocket-Version: 13\r\n` +
        `Origin: ${origin}\r\n\r\n`,
    ));
    const buf = new Uint8Array(2048);
    const n = await conn.read(buf);
    return Number(
      /^HTTP\/1\.1 (\d{3})/.exec(new TextDecoder().decode(buf.subarray(0, n ?? 0)))?.[1],
    );
  } finally {
    conn.close();
  }
}

Deno.test({
  ...opts,
  name: "responses carry security headers and no CORS grant for unlisted origins",
  async fn() {
    const server = await startServer({ RELAIS_ALLOWED_ORIGINS: PORTFOLIO });
    try {
      const res = await fetch(`${server.origin}/healthz`, { headers: { origin: PORTFOLIO } });
      await res.body?.cancel();
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.equal(res.headers.get("x-frame-options"), "SAMEORIGIN");
      assert.ok(res.headers.get("strict-transport-security"));
      assert.equal(res.headers.get("referrer-policy"), "no-referrer");
      assert.equal(res.headers.get("access-control-allow-origin"), PORTFOLIO);
      assert.match(res.headers.get("access-control-expose-headers") ?? "", /Retry-After/);
      assert.match(res.headers.get("vary") ?? "", /Origin/);

      // Not a browser's cross-origin request: no CORS grant, the same security headers, and
      // caches still told that the answer varies with Origin.
      const backend = await fetch(`${server.origin}/healthz`);
      await backend.body?.cancel();
      assert.equal(backend.headers.get("access-control-allow-origin"), null);
      assert.equal(backend.headers.get("x-content-type-options"), "nosniff");
      assert.match(backend.headers.get("vary") ?? "", /Origin/);

      const preflight = await fetch(`${server.origin}/v1/me/notifications`, {
        method: "OPTIONS",
        headers: {
          origin: PORTFOLIO,
          "access-control-request-method": "GET",
          "access-control-request-headers": "authorization",
        },
      });
      await preflight.body?.cancel();
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers.get("access-control-allow-origin"), PORTFOLIO);
      assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/i);

      const evil = await fetch(`${server.origin}/v1/me/notifications`, {
        method: "OPTIONS",
        headers: { origin: "https://evil.example.com", "access-control-request-method": "GET" },
      });
      await evil.body?.cancel();
      assert.equal(evil.headers.get("access-control-allow-origin"), null);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "WebSocket and SSE refuse browser pages of unlisted origins",
  async fn() {
    const server = await startServer({ RELAIS_ALLOWED_ORIGINS: PORTFOLIO });
    try {
      assert.equal(await upgradeStatus(server, "https://evil.example.com"), 403);
      assert.equal(await upgradeStatus(server, PORTFOLIO), 101);
      const token = await server.token("ana");
      const sse = await fetch(`${server.origin}/v1/sse`, {
        headers: { origin: "https://evil.example.com", authorization: `Bearer ${token}` },
      });
      assert.equal(sse.status, 403);
      assert.equal(((await sse.json()).error as { code: string }).code, "forbidden");
    } finally {
      await server.close();
    }
  },
});
