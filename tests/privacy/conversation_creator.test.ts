/** The erasure of a conversation's creator, end to end: their id goes from what members see. */

import assert from "node:assert/strict";
import { SERVICE_KEY, startServer } from "../_support/server.ts";

Deno.test("an erased user no longer shows as the creator of the conversations they started", async () => {
  const server = await startServer({ RELAIS_CONVERSATION_POLICY: "any" });
  try {
    const eve = await server.token("eve9");
    const oscar = await server.token("oscar9");
    const dm = await server.request("/v1/conversations", {
      bearer: eve,
      body: { members: ["oscar9"] },
    });
    const group = await server.request("/v1/conversations", {
      bearer: eve,
      body: { members: ["oscar9", "paul9"], title: "Trio" },
    });
    assert.equal(dm.body.created_by, "eve9");
    assert.equal(group.body.created_by, "eve9");

    const erased = await server.request("/v1/users/eve9", {
      method: "DELETE",
      apiKey: SERVICE_KEY,
    });
    assert.equal(erased.status, 200);

    for (const id of [dm.body.id, group.body.id]) {
      const seen = await server.request(`/v1/conversations/${id}`, { bearer: oscar });
      assert.equal(seen.status, 200);
      assert.equal(seen.body.created_by, null);
      assert.equal(seen.body.created_by_deleted, true);
      assert.deepEqual(seen.body.created_by_label, {
        fr: "Utilisateur supprimé",
        en: "Deleted user",
      });
      assert.doesNotMatch(JSON.stringify(seen.body), /eve9/);
    }
    const exported = await server.request("/v1/users/oscar9/export", { apiKey: SERVICE_KEY });
    assert.equal(exported.status, 200);
    assert.doesNotMatch(JSON.stringify(exported.body.conversations), /eve9/);
    // The group goes on for the others.
    const sent = await server.request(`/v1/conversations/${group.body.id}/messages`, {
      bearer: oscar,
      body: { text: "still here" },
    });
    assert.equal(sent.status, 201);
  } finally {
    await server.close();
  }
});
