/** The kill switch routes by id, on a real server over loopback. */

import assert from "node:assert/strict";
import { MAX_USER_ID_CHARS } from "../../src/schemas/user_id.ts";
import { SERVICE_KEY, startServer } from "../_support/server.ts";

Deno.test("a user's switch is set, read and removed by its id for any user id, 256 characters included", async () => {
  const server = await startServer();
  try {
    // What the ops page's "Switch off" sends for the user it looked up.
    for (const user of ["é".repeat(MAX_USER_ID_CHARS), "dept/j doe", "constructor"]) {
      const path = `/v1/admin/controls/${encodeURIComponent(`user:${user}`)}`;
      const put = await server.request(path, {
        method: "PUT",
        apiKey: SERVICE_KEY,
        body: { features: ["realtime", "push"], reason: "abuse" },
      });
      assert.equal(put.status, 201, JSON.stringify(put.body));
      assert.deepEqual(put.body.scope, { type: "USER", id: user });
      const read = await server.request(path, { apiKey: SERVICE_KEY });
      assert.equal(read.status, 200, JSON.stringify(read.body));
      assert.equal(read.body.reason, "abuse");
      const removed = await server.request(path, { method: "DELETE", apiKey: SERVICE_KEY });
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      assert.equal((await server.request(path, { apiKey: SERVICE_KEY })).status, 404);
    }
    // Past the user-id rule, the id names no scope: a 400 naming it.
    const tooLong = await server.request(
      `/v1/admin/controls/user:${"x".repeat(MAX_USER_ID_CHARS + 1)}`,
      { method: "PUT", apiKey: SERVICE_KEY, body: { features: ["push"], reason: "abuse" } },
    );
    assert.equal(tooLong.status, 400);
    assert.equal((tooLong.body.error as { code: string }).code, "validation_failed");
    assert.equal(
      (await server.request("/v1/admin/controls", { apiKey: SERVICE_KEY })).body.count,
      0,
    );
  } finally {
    await server.close();
  }
});
