/**
 * The SDK's actions over a WebSocket against a real relais on loopback: what `send()`
 * answers, and acks that a lost connection swallowed.
 */

import assert from "node:assert/strict";
import { ActionError, createRelais, type RelaisClient } from "../../src/client/relais.ts";
import type { EventFrame } from "../../src/client/types.ts";
import {
  envelope,
  eventually,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";

/**
 * A WebSocket on a network that fails once: the first client frame of type `lose` never
 * leaves, and the connection dies with it (as when a token expired or the network dropped
 * just as the frame was handed over). Every other frame goes out as usual.
 */
function lossyWebSocket(lose: string) {
  const lost: Record<string, unknown>[] = [];
  class LossyWebSocket extends WebSocket {
    override send(data: Parameters<WebSocket["send"]>[0]) {
      const frame = typeof data === "string" ? JSON.parse(data) : undefined;
      if (frame?.type === lose && lost.length === 0) {
        lost.push(frame);
        return this.close();
      }
      super.send(data);
    }
  }
  return { WebSocket: LossyWebSocket, lost };
}

function sdk(server: TestServer, user: string, WebSocket?: typeof globalThis.WebSocket) {
  const events: EventFrame[] = [];
  const relais = createRelais({
    url: server.origin,
    token: () => server.token(user),
    transports: ["ws"],
    watchBrowser: false,
    backoff: { baseMs: 20, maxMs: 200 },
    ...(WebSocket ? { WebSocket } : {}),
  });
  relais.on("event", (e) => events.push(e));
  return { relais, events };
}

async function opened(relais: RelaisClient) {
  await eventually(() => relais.state === "open", 8000, `open (now ${relais.state})`);
}

async function conversation(server: TestServer, members: string[]): Promise<string> {
  const created = await server.request("/v1/conversations", {
    method: "POST",
    apiKey: SERVICE_KEY,
    body: { kind: "group", title: "Peer review", members },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.id as string;
}

/** The `client_id`s of a conversation's stored messages, as `user` reads them. */
async function storedClientIds(server: TestServer, user: string, id: string) {
  const res = await server.request(`/v1/conversations/${id}/messages?limit=100`, {
    bearer: await server.token(user),
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body.messages as { client_id?: string }[]).map((m) => m.client_id).sort();
}

Deno.test("send() over a WebSocket resolves the messages stored and rejects those refused", async () => {
  const server = await startServer({ RELAIS_RATE_MESSAGES: "5/24h" });
  const { relais } = sdk(server, "ana");
  try {
    const conv = await conversation(server, ["ana", "ben"]);
    relais.connect();
    await opened(relais);
    // The unknown conversation first: past the limit, a send is refused for the limit.
    const sends = [relais.send("no-such-conversation", "hello?", { clientId: "lost" })];
    for (let i = 0; i < 8; i++) sends.push(relais.send(conv, `hi ${i}`, { clientId: `m${i}` }));
    const settled = await Promise.allSettled(sends);

    const resolved = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
    const errors = settled.flatMap((s) => s.status === "rejected" ? [s.reason] : []);
    // Every send is answered: what resolved is exactly what the server stored.
    assert.deepEqual(resolved.sort(), await storedClientIds(server, "ana", conv));
    assert.ok(resolved.length >= 4, `${resolved.length} stored`);
    for (const e of errors) assert.ok(e instanceof ActionError, String(e));
    const codes = errors.map((e: ActionError) => e.code);
    assert.deepEqual(codes, ["not_found", ...Array(8 - resolved.length).fill("rate_limited")]);
    const limited = errors.find((e: ActionError) => e.code === "rate_limited") as ActionError;
    assert.ok(limited.retryAfterMs! > 0, "the wait before sending again");
  } finally {
    relais.close();
    await server.close();
  }
});

Deno.test("a message lost with its connection is sent again on the next one and stored once", async () => {
  const server = await startServer();
  const network = lossyWebSocket("msg.send");
  const { relais } = sdk(server, "ana", network.WebSocket);
  try {
    const conv = await conversation(server, ["ana", "ben"]);
    relais.connect();
    await opened(relais);
    const session = relais.session;
    const clientId = await relais.send(conv, "still there?");
    assert.equal(network.lost.length, 1, "the first try was lost");
    assert.notEqual(relais.session, session, "answered on a new connection");
    // Resolved means stored.
    assert.deepEqual(await storedClientIds(server, "ana", conv), [clientId]);
  } finally {
    relais.close();
    await server.close();
  }
});

Deno.test("close() rejects a message still waiting for its answer", async () => {
  const server = await startServer();
  const network = lossyWebSocket("msg.send");
  const { relais } = sdk(server, "ana", network.WebSocket);
  try {
    const conv = await conversation(server, ["ana", "ben"]);
    relais.connect();
    await opened(relais);
    const sent = relais.send(conv, "anyone?");
    assert.equal(network.lost.length, 1, "the frame was lost");
    relais.close();
    await assert.rejects(sent, (e) => e instanceof ActionError && e.code === "closed");
  } finally {
    relais.close();
    await server.close();
  }
});

Deno.test("an ack lost with its connection is sent again when the item is redelivered", async () => {
  const server = await startServer({ RELAIS_ACK_RETRY_BASE_MS: "200" });
  const network = lossyWebSocket("ack");
  const { relais, events } = sdk(server, "camille", network.WebSocket);
  try {
    relais.connect();
    await opened(relais);
    const e = envelope(["camille"], {
      routing: { retry: { ack_required: true, limit: 2, backoff: "FIXED" } },
    });
    const id = (e.metadata as { id: string }).id;
    await server.publish(e);
    await eventually(() => events.length === 1, 5000, "the event");
    await relais.ack(id);
    assert.equal(network.lost.length, 1, "the ack went down with its connection");
    const status = await eventually(
      async () => {
        const res = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
        return (res.body.acked as number) + (res.body.failed as number) > 0 ? res.body : undefined;
      },
      8000,
      "the item acked or dead-lettered",
    );
    assert.deepEqual([status.acked, status.failed], [1, 0]);
    // The redelivery was answered, not handed to the application again.
    assert.equal(events.length, 1);
  } finally {
    relais.close();
    await server.close();
  }
});
