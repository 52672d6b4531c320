/**
 * Upgrades that `ws` does not complete are settled: the socket events `@hono/node-ws`
 * waits to start for such an upgrade open and close (1006) instead of waiting for as long
 * as the process lives. Real `@hono/node-ws` and `ws` on a `node:http` server on loopback.
 */

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createNodeWebSocket } from "@hono/node-ws";
import { Hono } from "hono";
import { settleAbandonedUpgrades, type UpgradeServer } from "../../src/node/settle_upgrade.ts";

const encoder = new TextEncoder();

Deno.test({
  name:
    "an upgrade refused by the WebSocket handshake closes its socket events instead of holding them",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const app = new Hono();
    const nodeWs = createNodeWebSocket({ app });
    settleAbandonedUpgrades(nodeWs.wss as unknown as UpgradeServer);
    const log: string[] = [];
    app.get(
      "/ws/:name",
      nodeWs.upgradeWebSocket((c) => {
        const name = c.req.param("name");
        return {
          onOpen: () => log.push(`${name} open`),
          onClose: (event) => log.push(`${name} close ${event.code}`),
        };
      }),
    );
    const server = createServer();
    nodeWs.injectWebSocket(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    try {
      // A handshake `ws` refuses: the key is not 16 bytes of base64.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(encoder.encode(
        `GET /ws/refused HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ));
      const answer = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
      assert.match(answer, /^HTTP\/1\.1 400/);

      // Barrier: a later upgrade opens after the refused one was settled.
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/later`);
      await new Promise((resolve) => ws.onopen = resolve);
      ws.close();
      await new Promise((resolve) => ws.onclose = resolve);
      assert.deepEqual(log.slice(0, 3), ["refused open", "refused close 1006", "later open"]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  },
});
