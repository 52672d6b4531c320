/** A 10,000-user audience: 202 at once, then one stream item per member, also across a SIGKILL. */

import assert from "node:assert/strict";
import { LEASE_SIZE } from "../../src/delivery/stream_heads.ts";
import * as keys from "../../src/store/keys.ts";
import type { StreamItem } from "../../src/store/store.ts";
import { bulkUserId, writeBulkDirectory } from "../_support/bulk_directory.ts";
import { spawnServer } from "../_support/process.ts";
import { envelope, eventually, SERVICE_KEY, startServer } from "../_support/server.ts";

const MEMBERS = 10_000;

/**
 * How many users' streams hold event `id` how many times, and each user's stored last seq.
 */
async function streamsOf(path: string, users: string[], id: string) {
  const kv = await Deno.openKv(path);
  try {
    const counts = new Map<number, number>();
    const lastSeqs = new Map<string, number>();
    for (const user of users) {
      let n = 0;
      for await (const e of kv.list<StreamItem>({ prefix: keys.streamPrefix(user) })) {
        if (e.value.id === id) n++;
      }
      counts.set(n, (counts.get(n) ?? 0) + 1);
      lastSeqs.set(user, (await kv.get<number>(keys.seqKey(user))).value ?? 0);
    }
    return { counts: Object.fromEntries(counts), lastSeqs };
  } finally {
    kv.close();
  }
}

const groupEvent = () =>
  envelope([], { routing: { audience: { type: "GROUP", targets: ["amphi-10k"] } } });

Deno.test("a 10,000-user group gets a 202 at once, its online members live, every stream once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relais-10k-" });
  const path = `${dir}/relais.kv`;
  const users = await writeBulkDirectory(path, MEMBERS, "amphi-10k");
  const server = await startServer({ RELAIS_KV_PATH: path });
  let closed = false;
  try {
    const online = [bulkUserId(0), bulkUserId(5000), bulkUserId(MEMBERS - 1)];
    const clients = await Promise.all(online.map(async (u) => (await server.login(u)).client));
    const e = groupEvent();
    const id = (e.metadata as { id: string }).id;

    const res = await server.publish(e);
    assert.equal(res.status, 202);
    assert.equal(res.body.targeted, MEMBERS);
    // The answer came once the event and its job were durable, not after the fan-out.
    const early = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
    assert.equal(early.body.fan_out, "running");

    for (const client of clients) {
      const frame = await client.next((f) => f.type === "event", 60_000);
      assert.equal(frame.envelope.metadata.id, id);
    }
    await eventually(
      async () => {
        const status = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
        return status.body.fan_out === "done";
      },
      120_000,
      "the fan-out to finish",
    );
    // The online members got it before it was written: each delivery is recorded once,
    // whether with its item or after it.
    await eventually(
      async () => {
        const status = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
        return status.body.delivered === online.length;
      },
      10_000,
      "the online members' deliveries to be recorded",
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const status = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
    assert.equal(status.body.delivered, online.length, "counted once each");
    const pending = status.body.pending_users as string[];
    for (const user of online) assert.equal(pending.includes(user), false, user);
    await server.close();
    closed = true;
    const streams = await streamsOf(path, users, id);
    assert.deepEqual(streams.counts, { 1: MEMBERS });
    // An online member's head reserved a range of seqs: the stored last seq is its end.
    // Everyone else's stream holds just this item.
    const leased = new Set(online);
    assert.deepEqual(
      streams.lastSeqs,
      new Map(users.map((u) => [u, leased.has(u) ? LEASE_SIZE : 1])),
    );
  } finally {
    if (!closed) await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a 10,000-user fan-out killed half-way resumes on restart without loss or duplicates", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relais-10k-crash-" });
  const path = `${dir}/relais.kv`;
  const users = await writeBulkDirectory(path, MEMBERS, "amphi-10k");
  const env = { RELAIS_KV_PATH: path, RELAIS_OUTBOX_DIR: `${dir}/outbox` };
  const e = groupEvent();
  const id = (e.metadata as { id: string }).id;

  const first = await spawnServer(env);
  let interrupted: { chunk: number; offset: number } | undefined;
  try {
    const res = await fetch(`${first.origin}/v1/events`, {
      method: "POST",
      headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
      body: JSON.stringify(e),
    });
    assert.equal(res.status, 202);
    await res.body?.cancel();
    // Kill as soon as some batches are committed, before the job is done.
    const kv = await Deno.openKv(path);
    try {
      interrupted = await eventually(
        async () => {
          const job = (await kv.get<{ chunk: number; offset: number }>(keys.jobKey(id))).value;
          return job && (job.chunk > 0 || job.offset > 0) ? job : undefined;
        },
        60_000,
        "the fan-out to start",
      );
      await first.kill("SIGKILL");
      const left = (await kv.get(keys.jobKey(id))).value;
      assert.ok(left, "the fan-out was still running when the process was killed");
    } finally {
      kv.close();
    }
  } finally {
    if (!interrupted) await first.kill("SIGKILL");
  }

  const second = await spawnServer(env);
  try {
    await eventually(
      async () => {
        const res = await fetch(`${second.origin}/v1/events/${id}`, {
          headers: { "x-api-key": SERVICE_KEY },
        });
        const body = await res.json();
        return body.fan_out === "done";
      },
      120_000,
      "the resumed fan-out to finish",
    );
    // A re-post of the same id creates nothing new.
    const again = await fetch(`${second.origin}/v1/events`, {
      method: "POST",
      headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
      body: JSON.stringify(e),
    });
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    await again.body?.cancel();
  } finally {
    await second.kill("SIGTERM");
  }
  const streams = await streamsOf(path, users, id);
  assert.deepEqual(streams.counts, { 1: MEMBERS });
  // Nobody connected: no head reserved a range, each stream holds just this item.
  assert.deepEqual(streams.lastSeqs, new Map(users.map((u) => [u, 1])));
  await Deno.remove(dir, { recursive: true });
});
