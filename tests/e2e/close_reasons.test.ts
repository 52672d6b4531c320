/**
 * End-to-end: a WebSocket close frame holds at most 123 bytes of reason. A reason that
 * quotes what the client sent is cut to fit, and a reason the runtime refuses still closes
 * the socket: a socket left open would be out of every deadline's reach.
 */

import assert from "node:assert/strict";
import { base64url } from "jose";
import { startServer } from "../_support/server.ts";
import { connect } from "../_support/ws_client.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const encoder = new TextEncoder();

/** A token whose header names `alg` (its signature is never checked: the alg is refused). */
function tokenWithAlg(alg: string): string {
  const header = base64url.encode(JSON.stringify({ alg, typ: "JWT" }));
  const payload = base64url.encode(JSON.stringify({ sub: "ana", exp: 4_000_000_000 }));
  return `${header}.${payload}.c2lnbmF0dXJl`;
}

Deno.test({
  ...opts,
  name: "a hello whose token names a long non-ASCII alg is closed with 4001 at once",
  async fn() {
    const server = await startServer({ RELAIS_RATE_AUTH_FAILURES: "off" });
    try {
      for (const alg of ["A".repeat(64), "€".repeat(64)]) {
        const client = await connect(server.wsUrl);
        client.send({ type: "hello", token: tokenWithAlg(alg) });
        // Well before the 10 s hello deadline: the refusal itself closes the socket.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const closed = await Promise.race([
          client.closed,
          new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), 5000)), // deadline, not synchronisation
        ]);
        clearTimeout(timer);
        await client.close();
        assert.ok(closed, `alg of ${alg.length} "${alg[0]}": the socket is still open`);
        assert.equal(closed.code, 4001);
        assert.match(closed.reason, /^Token algorithm "(A|€)+/);
        assert.ok(encoder.encode(closed.reason).byteLength <= 123, closed.reason);
      }
      assert.equal(server.relais.hub.size(), 0);
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "a socket closed with a reason over 123 bytes is closed with its code alone",
  async fn() {
    const server = await startServer();
    try {
      const { client, welcome } = await server.login("ana");
      const conn = server.relais.hub.get(welcome.session as string);
      assert.ok(conn);
      conn.outlet.close(4003, "€".repeat(100));
      const closed = await client.closed;
      assert.deepEqual(closed, { code: 4003, reason: "" });
    } finally {
      await server.close();
    }
  },
});
