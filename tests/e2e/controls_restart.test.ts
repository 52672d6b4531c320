/** Kill switches survive a crash: a SIGKILLed server restarts with its switches in force. */

import assert from "node:assert/strict";
import { type ChildServer, spawnServer } from "../_support/process.ts";
import { signHs256 } from "../_support/auth.ts";
import { JWT_SECRET, SERVICE_KEY } from "../_support/server.ts";
import { connect } from "../_support/ws_client.ts";

async function hello(server: ChildServer, sub: string, structures: string[]) {
  const now = Math.floor(Date.now() / 1000);
  const token = await signHs256(
    { sub, structures, roles: [], iat: now, exp: now + 600 },
    { secret: JWT_SECRET },
  );
  const client = await connect(server.wsUrl);
  client.send({ type: "hello", token });
  const outcome = await Promise.race([
    client.next((f) => f.type === "welcome", 10_000).then(() => "welcome"),
    client.closed.then((c) => c.code),
  ]);
  await client.close();
  return outcome;
}

async function admin(server: ChildServer, path: string, init: RequestInit = {}) {
  const res = await fetch(`${server.origin}${path}`, {
    ...init,
    headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
  });
  return { status: res.status, body: await res.json() };
}

Deno.test({
  name: "a kill switch is still in force after the server is killed and restarted",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const env = { RELAIS_KV_PATH: `${dir}/relais.kv` };
    let server = await spawnServer(env);
    try {
      const put = await admin(server, "/v1/admin/controls", {
        method: "PUT",
        body: JSON.stringify({
          scope: { type: "STRUCTURE", id: "univ-a" },
          features: ["realtime"],
          reason: "Migration of univ-a",
          by: "ops@example.org",
        }),
      });
      assert.equal(put.status, 201);
      assert.equal(await hello(server, "ana", ["univ-a"]), 4003);

      await server.kill("SIGKILL");
      server = await spawnServer(env);

      assert.equal(await hello(server, "ana", ["univ-a"]), 4003);
      assert.equal(await hello(server, "ben", ["univ-b"]), "welcome");
      const list = await admin(server, "/v1/admin/controls");
      assert.deepEqual(list.body.controls.map((c: { id: string }) => c.id), ["structure:univ-a"]);
      const audit = await admin(server, "/v1/admin/controls/audit");
      assert.equal(audit.body.count, 1);
      assert.deepEqual(audit.body.entries[0].actor, { service: "test", by: "ops@example.org" });

      assert.equal(
        (await admin(server, "/v1/admin/controls/structure:univ-a", {
          method: "DELETE",
        })).status,
        200,
      );
      assert.equal(await hello(server, "ana", ["univ-a"]), "welcome");
    } finally {
      await server.kill("SIGKILL").catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
