/** Bad input on the messaging paths gets a 4xx (or an error frame) naming the field, never a 5xx. */

import assert from "node:assert/strict";
import { SERVICE_KEY, startServer } from "../_support/server.ts";
import type { Frame } from "../_support/ws_client.ts";

const ENV = { RELAIS_CONVERSATION_POLICY: "any", RELAIS_RATE_MESSAGES: "off" };

Deno.test("bad conversation requests answer 4xx with a code and the field path", async () => {
  const server = await startServer(ENV);
  try {
    const token = await server.token("ana");
    const group = await server.request("/v1/conversations", {
      apiKey: SERVICE_KEY,
      body: { members: ["ana", "ben"] },
    });
    const id = group.body.id as string;
    const cases: [string, { method?: string; body?: unknown; bearer?: string }, number, string?][] =
      [
        ["/v1/conversations", { body: { members: ["ben"] }, bearer: "" }, 401],
        ["/v1/conversations", { body: { members: "ben" } }, 400, "members"],
        ["/v1/conversations", { body: { members: [] } }, 400, "members"],
        ["/v1/conversations", { body: { members: ["ben"], extra: 1 } }, 400, "extra"],
        ["/v1/conversations", { body: { members: ["ben"], title: "x".repeat(201) } }, 400, "title"],
        ["/v1/conversations", { body: { members: ["ben"], owners: ["ben"] } }, 400, "owners"],
        ["/v1/conversations", { body: { members: ["ana"] } }, 400, "members"],
        [
          "/v1/conversations",
          { body: { kind: "direct", members: ["ben", "chloe"] } },
          400,
          "members",
        ],
        [
          "/v1/conversations",
          { body: { members: ["ben"], context: { type: "a" } } },
          400,
          "context.id",
        ],
        [`/v1/conversations/${id}/messages`, { body: { text: 42 } }, 400, "text"],
        [
          `/v1/conversations/${id}/messages`,
          { body: { text: "x", client_id: "" } },
          400,
          "client_id",
        ],
        [
          `/v1/conversations/${id}/messages`,
          { body: { text: "x", attachments: [{ url: "javascript:alert(1)", name: "a" }] } },
          400,
          "attachments.0.url",
        ],
        [
          `/v1/conversations/${id}/messages`,
          { body: { text: "x", attachments: [{ url: "not a url", name: "a" }] } },
          400,
          "attachments.0.url",
        ],
        [`/v1/conversations/${id}/messages?before=abc`, {}, 400, "before"],
        [`/v1/conversations/${id}/messages?limit=1000`, {}, 400, "limit"],
        [`/v1/conversations/${id}/messages/abc`, { method: "PATCH", body: { text: "x" } }, 400],
        [`/v1/conversations/${id}/messages/1`, { method: "PATCH", body: {} }, 400, "text"],
        [`/v1/conversations/${id}/read`, { body: { seq: -1 } }, 400, "seq"],
        [
          `/v1/conversations/${id}/members`,
          { body: { members: [{ id: "x", role: "king" }] } },
          400,
        ],
        [`/v1/conversations/${"x".repeat(300)}/messages`, {}, 400],
        ["/v1/conversations/unknown/messages", {}, 404],
        ["/v1/conversations/unknown/messages", { body: { text: "x" } }, 404],
        ["/v1/conversations/unknown/read", { method: "POST" }, 404],
        ["/v1/me/blocks/ana", { method: "PUT" }, 400, "userId"],
      ];
    for (const [path, init, status, field] of cases) {
      const res = await server.request(path, { bearer: token, ...init });
      const what = `${init.method ?? (init.body ? "POST" : "GET")} ${path.slice(0, 80)}`;
      assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
      const error = res.body.error as Frame;
      assert.ok(error?.code, what);
      if (field) {
        assert.ok(
          (error.details as Frame[] | undefined)?.some((d) => d.path === field),
          `${what} names "${field}": ${JSON.stringify(error)}`,
        );
      }
    }
    const raw = await fetch(`${server.origin}/v1/conversations/${id}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: "{not json",
    });
    assert.equal(raw.status, 400);
    assert.equal((await raw.json()).error.code, "invalid_json");
    const text = await fetch(`${server.origin}/v1/conversations/${id}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "text/plain" },
      body: "bonjour",
    });
    assert.equal(text.status, 415);
    await text.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("bad messaging frames get an error frame with their ref and the socket stays usable", async () => {
  const server = await startServer(ENV);
  try {
    const group = await server.request("/v1/conversations", {
      apiKey: SERVICE_KEY,
      body: { members: ["ana", "ben"] },
    });
    const id = group.body.id as string;
    const { client } = await server.login("ana");
    const frames: [Record<string, unknown>, string][] = [
      [{ type: "msg.send", conversation: id, text: "x", ref: "a" }, "validation_failed"],
      [
        { type: "msg.send", conversation: id, text: 5, client_id: "c", ref: "b" },
        "validation_failed",
      ],
      [{
        type: "msg.send",
        conversation: id,
        text: "x",
        client_id: "c",
        attachments: [{ url: "file:///etc/passwd", name: "p" }],
        ref: "c",
      }, "validation_failed"],
      [{ type: "read", conversation: id, ref: "d" }, "validation_failed"],
      [{ type: "typing", conversation: "unknown", ref: "e" }, "not_found"],
      [{ type: "read", conversation: "unknown", seq: 1, ref: "f" }, "not_found"],
    ];
    for (const [frame, code] of frames) {
      client.send(frame);
      const error = await client.next((f) => f.type === "error");
      assert.equal(error.code, code, JSON.stringify(error));
      assert.equal(error.ref, frame.ref);
    }
    client.send({ type: "msg.send", conversation: id, text: "toujours là", client_id: "ok" });
    const msg = await client.next((f) => f.type === "msg");
    assert.equal(msg.text, "toujours là");
  } finally {
    await server.close();
  }
});
