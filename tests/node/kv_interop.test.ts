/**
 * One data file, two runtimes: a KV file written by relais on Deno (`Deno.openKv`) is
 * served by relais on Node (`@deno/kv`), and the reverse. Each side runs as a child
 * process on the same file, one after the other, and is reached over the network only.
 */

import assert from "node:assert/strict";
import { spawnServer, type TestRuntime } from "../_support/process.ts";
import { envelope, eventually, SERVICE_KEY } from "../_support/server.ts";
import { login, publish, request, WITHOUT_NODE } from "./_support.ts";

const PAIRS: [TestRuntime, TestRuntime][] = [["deno", "node"], ["node", "deno"]];

for (const [writer, reader] of PAIRS) {
  Deno.test({
    name: `a KV file written under ${writer} is served under ${reader}`,
    ignore: WITHOUT_NODE,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: `relais-${writer}-${reader}-` });
      const env = {
        RELAIS_KV_PATH: `${dir}/relais.kv`,
        RELAIS_OUTBOX_DIR: `${dir}/outbox`,
        RELAIS_CONVERSATION_POLICY: "any",
        RELAIS_RATE_MESSAGES: "off",
      };
      try {
        // Written by one runtime: an event that needs an ack, a conversation with a
        // message (unread counts are KV u64 values) and a kill switch.
        const first = await spawnServer(env, { runtime: writer });
        let eventId: string;
        let conversation: string;
        try {
          eventId = await publish(
            first,
            envelope(["camille"], { routing: { retry: { ack_required: true } } }),
          );
          const created = await request(first, "/v1/conversations", {
            apiKey: SERVICE_KEY,
            body: { members: ["ana", "ben"], title: "Relecture" },
          });
          assert.equal(created.status, 201, JSON.stringify(created.body));
          conversation = created.body.id;
          const sent = await request(first, `/v1/conversations/${conversation}/messages`, {
            user: "ana",
            body: { text: `bonjour de ${writer}` },
          });
          assert.equal(sent.status, 201, JSON.stringify(sent.body));
          const control = await request(first, "/v1/admin/controls", {
            method: "PUT",
            apiKey: SERVICE_KEY,
            body: {
              scope: { type: "USER", id: "zoe" },
              features: ["realtime"],
              reason: `Set under ${writer}`,
            },
          });
          assert.ok(control.status === 200 || control.status === 201, JSON.stringify(control.body));
        } finally {
          const status = await first.kill("SIGTERM");
          assert.equal(status.code, 0, `${writer} exits cleanly on SIGTERM`);
        }

        // Read by the other runtime.
        const second = await spawnServer(env, { runtime: reader });
        try {
          const status = await request(second, `/v1/events/${eventId}`, { apiKey: SERVICE_KEY });
          assert.equal(status.status, 200, JSON.stringify(status.body));
          assert.equal(status.body.targeted, 1);
          assert.equal(status.body.acked_all, false);

          const camille = await login(second, "camille", { after: 0 });
          assert.ok(camille.welcome, `camille is welcome under ${reader}`);
          assert.equal(camille.welcome.seq, 1);
          const event = await camille.client.next((f) => f.type === "event");
          assert.deepEqual([event.seq, event.envelope.metadata.id], [1, eventId]);
          camille.client.send({ type: "ack", id: eventId });
          await eventually(
            async () => {
              const res = await request(second, `/v1/events/${eventId}`, { apiKey: SERVICE_KEY });
              return res.body.acked_all === true;
            },
            10_000,
            `the ack written under ${reader}`,
          );
          await camille.client.close();

          const list = await request(second, "/v1/me/conversations", { user: "ben" });
          assert.equal(list.status, 200, JSON.stringify(list.body));
          const [summary] = list.body.conversations;
          assert.equal(summary.id, conversation);
          assert.equal(summary.unread, 1);
          assert.equal(summary.last.preview, `bonjour de ${writer}`);
          // The conversation's sequence goes on from the file.
          const next = await request(second, `/v1/conversations/${conversation}/messages`, {
            user: "ben",
            body: { text: `réponse de ${reader}` },
          });
          assert.equal(next.status, 201, JSON.stringify(next.body));
          assert.equal(next.body.seq, 2);

          const zoe = await login(second, "zoe");
          assert.equal(zoe.closed?.code, 4003, "the kill switch written earlier is in force");
          assert.match(zoe.closed?.reason ?? "", new RegExp(`Set under ${writer}`));
        } finally {
          const status = await second.kill("SIGTERM");
          assert.equal(status.code, 0, `${reader} exits cleanly on SIGTERM`);
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
