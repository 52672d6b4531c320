/** No confirmed message is lost, and no hole appears, when the server is killed mid-burst. */

import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { spawnServer } from "../_support/process.ts";
import { JWT_SECRET, SERVICE_KEY } from "../_support/server.ts";
import { connect, type Frame } from "../_support/ws_client.ts";

const token = (sub: string) =>
  new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setIssuedAt()
    .setExpirationTime("1h").sign(new TextEncoder().encode(JWT_SECRET));

Deno.test("after a SIGKILL during a burst every confirmed message is in the history and the sequence has no hole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relais-msg-crash-" });
  const env = {
    RELAIS_KV_PATH: `${dir}/relais.kv`,
    RELAIS_CONVERSATION_POLICY: "any",
    RELAIS_RATE_MESSAGES: "off",
  };
  const users = ["ana", "ben", "chloe"];
  const confirmed = new Set<string>();
  // The kill comes at the confirmation that makes 40, while the rest is in flight.
  const forty = Promise.withResolvers<void>();
  const confirm = (clientId: string) => {
    confirmed.add(clientId);
    if (confirmed.size >= 40) forty.resolve();
  };
  const first = await spawnServer(env);
  let conversation = "";
  try {
    const created = await fetch(`${first.origin}/v1/conversations`, {
      method: "POST",
      headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
      body: JSON.stringify({ members: users, title: "Burst" }),
    });
    conversation = (await created.json()).id;
    assert.equal(created.status, 201);

    // Over WebSocket, a sender's confirmation is the msg frame echoing its client_id.
    const clients = await Promise.all(users.map(async (user) => {
      const client = await connect(first.wsUrl);
      client.send({ type: "hello", token: await token(user) });
      await client.next((f) => f.type === "welcome");
      client.socket.addEventListener("message", (e) => {
        const f = JSON.parse(e.data as string) as Frame;
        if (f.type === "msg" && f.from === user) confirm(f.client_id);
      });
      return client;
    }));
    for (const [i, client] of clients.entries()) {
      for (let n = 0; n < 300; n++) {
        client.send({
          type: "msg.send",
          conversation,
          text: `${n}`,
          client_id: `${users[i]}-ws-${n}`,
        });
      }
    }
    // Over HTTP, the confirmation is the 201.
    const http = (async () => {
      const bearer = await token("ana");
      for (let n = 0; n < 1000; n++) {
        const res = await fetch(`${first.origin}/v1/conversations/${conversation}/messages`, {
          method: "POST",
          headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
          body: JSON.stringify({ text: `http ${n}`, client_id: `ana-http-${n}` }),
        }).catch(() => undefined);
        if (!res) return;
        await res.body?.cancel();
        if (res.status === 201) confirm(`ana-http-${n}`);
      }
    })();
    // Kill once a good part of the burst is confirmed, while the rest is in flight.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      forty.promise,
      new Promise<void>((r) => timer = setTimeout(r, 20_000)), // deadline, not synchronisation
    ]);
    clearTimeout(timer);
    assert.ok(confirmed.size >= 40, `only ${confirmed.size} confirmations before the kill`);
    const status = await first.kill("SIGKILL");
    assert.equal(status.signal, "SIGKILL");
    await http;
    for (const client of clients) await client.close().catch(() => {});
  } catch (e) {
    await first.kill("SIGKILL").catch(() => {});
    throw e;
  }

  const second = await spawnServer(env);
  try {
    const bearer = await token("ben");
    const stored: Frame[] = [];
    let before: number | undefined;
    do {
      const query = before === undefined ? "?limit=100" : `?limit=100&before=${before}`;
      const res = await fetch(
        `${second.origin}/v1/conversations/${conversation}/messages${query}`,
        {
          headers: { authorization: `Bearer ${bearer}` },
        },
      );
      const page = await res.json();
      assert.equal(res.status, 200);
      stored.push(...page.messages);
      before = page.next;
    } while (before !== undefined);

    const seqs = stored.map((m) => m.seq).reverse();
    assert.ok(seqs.length >= confirmed.size);
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), "no hole");
    const ids = new Set(stored.map((m) => m.client_id));
    assert.equal(ids.size, stored.length, "no message stored twice");
    const lost = [...confirmed].filter((id) => !ids.has(id));
    assert.deepEqual(lost, [], "every confirmed message survived");

    // The conversation keeps going after the restart, right after the last seq.
    const next = await fetch(`${second.origin}/v1/conversations/${conversation}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
      body: JSON.stringify({ text: "après" }),
    });
    assert.equal(next.status, 201);
    assert.equal((await next.json()).seq, seqs.length + 1);
  } finally {
    await second.kill("SIGTERM");
    await Deno.remove(dir, { recursive: true });
  }
});
