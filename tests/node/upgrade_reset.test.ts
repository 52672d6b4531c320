/**
 * On Node, a client that resets its connection in the middle of a WebSocket upgrade does
 * not end the process. Node's HTTP server stops watching a socket once it hands it over as
 * an upgrade, and the socket is answered only after the app has seen the request: a reset
 * in between is an `error` on a socket nobody listens to.
 *
 * The hostile client is a small Node script: Deno's sockets cannot send a TCP reset, Node's
 * can (`resetAndDestroy`).
 */

import assert from "node:assert/strict";
import { spawnServer } from "../_support/process.ts";
import { login, WITHOUT_NODE } from "./_support.ts";

/** Opens `count` upgrades on `port` and resets each after 0 to 4 ms, one at a time. */
const RESETTER = `
import net from "node:net";
const [port, count] = process.argv.slice(1).map(Number);
for (let i = 0; i < count; i++) {
  await new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write("GET /v1/ws HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nUpgrade: websocket\\r\\n" +
        "Connection: Upgrade\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n" +
        "Sec-WebSocket-Version: 13\\r\\nSec-WebSocket-Protocol: relais.v1\\r\\n\\r\\n");
      setTimeout(() => {
        socket.resetAndDestroy();
        resolve();
      }, i % 5);
    });
    socket.on("error", resolve);
  });
}
`;

Deno.test({
  name:
    "on Node a client resetting its connection during a WebSocket upgrade does not end the process",
  ignore: WITHOUT_NODE,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = await spawnServer({}, { runtime: "node" });
    let exited: Deno.CommandStatus | undefined;
    server.process.status.then((status) => exited = status);
    try {
      const port = new URL(server.origin).port;
      const resetter = await new Deno.Command("node", {
        args: ["--input-type=module", "-e", RESETTER, port, "100"],
        stdout: "null",
        stderr: "inherit",
      }).output();
      assert.ok(resetter.success, "the resetting client ran");

      // Served after the resets: the process is still there, its sockets still work.
      const health = await fetch(`${server.origin}/healthz`);
      await health.body?.cancel();
      assert.equal(health.status, 200);
      const ana = await login(server, "ana");
      assert.ok(ana.welcome);
      await ana.client.close();
      assert.equal(exited, undefined);
    } finally {
      if (!exited) await server.kill("SIGTERM");
    }
  },
});
