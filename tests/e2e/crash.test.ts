/** Nothing accepted is lost when the process is killed right after answering. */

import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { spawnServer } from "../_support/process.ts";
import { envelope, JWT_SECRET, SERVICE_KEY } from "../_support/server.ts";
import { connect } from "../_support/ws_client.ts";

const token = (sub: string) =>
  new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setIssuedAt()
    .setExpirationTime("1h").sign(new TextEncoder().encode(JWT_SECRET));

Deno.test("every 202ed event is delivered after a SIGKILL and a restart on the same KV", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relais-crash-" });
  const env = { RELAIS_KV_PATH: `${dir}/relais.kv` };
  const users = ["camille", "yanis", "emma"];
  const accepted = new Map<string, string[]>(users.map((u) => [u, []]));
  const first = await spawnServer(env);
  try {
    // Publish concurrently, in waves, so the kill lands while work is in flight.
    for (let wave = 0; wave < 10; wave++) {
      await Promise.all(Array.from({ length: 6 }, async (_, i) => {
        const targets = [users[i % 3], users[(i + wave) % 3]].filter((u, j, a) =>
          a.indexOf(u) === j
        );
        const e = envelope(targets, {
          routing: { retry: { ack_required: i % 2 === 0 } },
        });
        const res = await fetch(`${first.origin}/v1/events`, {
          method: "POST",
          headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
          body: JSON.stringify(e),
        });
        await res.body?.cancel();
        if (res.status === 202) {
          for (const t of targets) accepted.get(t)!.push((e.metadata as { id: string }).id);
        }
      }));
    }
  } finally {
    const status = await first.kill("SIGKILL");
    assert.equal(status.signal, "SIGKILL");
  }

  const second = await spawnServer(env);
  try {
    for (const user of users) {
      const client = await connect(second.wsUrl);
      client.send({ type: "hello", token: await token(user), after: 0 });
      const welcome = await client.next((f) => f.type === "welcome");
      // A resume across a restart has no epoch of the new process: every stored item is
      // replayed exactly below, but the resume is not called recovered.
      assert.equal(welcome.recovered, false);
      const expected = accepted.get(user)!;
      assert.equal(welcome.seq, expected.length, `seq of ${user}`);
      const got: string[] = [];
      const seqs: number[] = [];
      while (got.length < expected.length) {
        const frame = await client.next((f) => f.type === "event", 5000);
        if (got.includes(frame.envelope.metadata.id)) continue;
        got.push(frame.envelope.metadata.id);
        seqs.push(frame.seq);
      }
      assert.deepEqual(new Set(got), new Set(expected));
      assert.deepEqual(seqs, seqs.toSorted((a, b) => a - b));
      // Barrier: the next new item is the next live one, right after the stored ones.
      const barrier = envelope([user]);
      const res = await fetch(`${second.origin}/v1/events`, {
        method: "POST",
        headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
        body: JSON.stringify(barrier),
      });
      await res.body?.cancel();
      assert.equal(res.status, 202);
      let next = await client.next((f) => f.type === "event", 5000);
      // An unacked item may come again on its backoff; nothing new may come before.
      while (got.includes(next.envelope.metadata.id)) {
        next = await client.next((f) => f.type === "event", 5000);
      }
      assert.deepEqual(
        [next.seq, next.envelope.metadata.id],
        [expected.length + 1, (barrier.metadata as { id: string }).id],
      );
      await client.close();
    }
  } finally {
    await second.kill("SIGTERM");
    await Deno.remove(dir, { recursive: true });
  }
});
