/**
 * End-to-end: a SIGKILL in the middle of a 10,000-user fan-out with clients connected.
 * After the restart every client resumes from its position: durable items arrive exactly
 * once, ephemeral ones were either all received or the welcome says `recovered: false`,
 * the epoch changed, and no seq ever names two different items.
 */

import assert from "node:assert/strict";
import { SignJWT } from "jose";
import * as keys from "../../src/store/keys.ts";
import { createKvStore } from "../../src/store/kv_store.ts";
import type { StreamItem } from "../../src/store/store.ts";
import { bulkUserId, writeBulkDirectory } from "../_support/bulk_directory.ts";
import { type ChildServer, spawnServer } from "../_support/process.ts";
import { envelope, eventually, JWT_SECRET, SERVICE_KEY } from "../_support/server.ts";
import { makeEnvelope, result } from "../_support/store.ts";
import { connect, type Frame, type TestClient } from "../_support/ws_client.ts";

const MEMBERS = 10_000;
/** Connected members, spread over the audience (and so over the fan-out's batches). */
const ONLINE = Array.from({ length: 40 }, (_, i) => bulkUserId(i * 250 + 7));
const GROUP = "amphi-10k";
/**
 * A member whose socket closed just before the publishes, while their stream head stayed
 * (their actor lingers): the durable item is assigned a seq from that head and goes to no
 * socket; it comes late in the fan-out's order.
 */
const AWAY = bulkUserId(9_998);

const token = (sub: string) =>
  new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setIssuedAt()
    .setExpirationTime("1h").sign(new TextEncoder().encode(JWT_SECRET));

const groupEvent = (type: "REALTIME" | "NOTIFICATION") =>
  envelope([], {
    metadata: { type },
    routing: { audience: { type: "GROUP", targets: [GROUP] } },
  });

const idOf = (e: Record<string, unknown>) => (e.metadata as { id: string }).id;

async function publish(server: ChildServer, e: unknown) {
  const res = await fetch(`${server.origin}/v1/events`, {
    method: "POST",
    headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
    body: JSON.stringify(e),
  });
  await res.body?.cancel();
  assert.equal(res.status, 202);
}

/** Connects `user` and says hello from `position`; answers the client and its welcome. */
async function hello(server: ChildServer, user: string, position: Record<string, unknown>) {
  const client = await connect(server.wsUrl);
  client.send({ type: "hello", token: await token(user), ...position });
  const welcome = await client.next((f) => f.type === "welcome" || f.type === "error", 20_000);
  assert.equal(welcome.type, "welcome", JSON.stringify(welcome));
  return { client, welcome };
}

/** The item frames a client received (events and updates), in order. */
const items = (frames: Frame[]) =>
  frames.filter((f) => f.type === "event" || f.type === "update") as {
    seq: number;
    envelope: { metadata: { id: string } };
  }[];

Deno.test("a SIGKILL during a 10,000-user fan-out loses nothing and reuses no seq", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relais-fanout-kill-" });
  const path = `${dir}/relais.kv`;
  const users = await writeBulkDirectory(path, MEMBERS, GROUP);
  const env = { RELAIS_KV_PATH: path, RELAIS_OUTBOX_DIR: `${dir}/outbox` };
  const before = groupEvent("REALTIME");
  const durable = groupEvent("NOTIFICATION");
  const during = groupEvent("REALTIME");
  const ephemeralIds = new Set([idOf(before), idOf(during)]);

  const first = await spawnServer(env);
  const sessions: { user: string; client: TestClient; epoch: string }[] = [];
  let killed = false;
  try {
    for (const user of ONLINE) {
      const { client, welcome } = await hello(first, user, {});
      sessions.push({ user, client, epoch: welcome.epoch });
    }
    const away = await hello(first, AWAY, {});
    await away.client.close();
    // First to come back: before the restarted fan-out has written it.
    sessions.unshift({ user: AWAY, client: away.client, epoch: away.welcome.epoch });
    await publish(first, before);
    await publish(first, durable);
    await publish(first, during);
    // Kill once some batches of the durable fan-out are committed, before it is done.
    const kv = await Deno.openKv(path);
    try {
      await eventually(
        async () => {
          const job = (await kv.get<{ chunk: number; offset: number }>(keys.jobKey(idOf(durable))))
            .value;
          return job !== null && (job.chunk > 0 || job.offset > 0);
        },
        60_000,
        "the durable fan-out to start",
      );
      await first.kill("SIGKILL");
      killed = true;
      assert.ok((await kv.get(keys.jobKey(idOf(durable)))).value, "killed during the fan-out");
    } finally {
      kv.close();
    }
  } finally {
    if (!killed) await first.kill("SIGKILL");
  }
  await Promise.all(sessions.map((s) => s.client.closed));

  const second = await spawnServer(env);
  try {
    const resumed = [];
    for (const { user, client, epoch } of sessions) {
      const got = items(client.received);
      const after = got.reduce((max, f) => Math.max(max, f.seq), 0);
      if (user === AWAY) assert.equal(got.length, 0, "away before the publishes");
      const again = await hello(second, user, { after, epoch });
      assert.notEqual(again.welcome.epoch, epoch, "a restart starts a new epoch");
      const missed = [...ephemeralIds].some((id) =>
        !got.some((f) => f.envelope.metadata.id === id)
      );
      if (missed) assert.equal(again.welcome.recovered, false, `${user} missed an ephemeral item`);
      resumed.push({ user, before: got, client: again.client, welcome: again.welcome });
    }
    await eventually(
      async () => {
        const res = await fetch(`${second.origin}/v1/events/${idOf(durable)}`, {
          headers: { "x-api-key": SERVICE_KEY },
        });
        return (await res.json()).fan_out === "done";
      },
      120_000,
      "the resumed fan-out to finish",
    );
    // Barrier: an event after the fan-out; every frame before it has arrived.
    const marker = groupEvent("REALTIME");
    await publish(second, marker);
    for (const { user, before: got, client, welcome } of resumed) {
      await client.next((f) => f.envelope?.metadata.id === idOf(marker), 60_000);
      const all = [...got, ...items(client.received)];
      const durableCount = all.filter((f) => f.envelope.metadata.id === idOf(durable)).length;
      if (durableCount !== 1) {
        const show = (fs: typeof all) => fs.map((f) => [f.seq, f.envelope.metadata.id.slice(0, 8)]);
        const kv = await Deno.openKv(path);
        const stored = [];
        for await (const e of kv.list<StreamItem>({ prefix: keys.streamPrefix(user) })) {
          stored.push([e.value.seq, e.value.id.slice(0, 8)]);
        }
        const seq = (await kv.get(keys.seqKey(user))).value;
        kv.close();
        console.error(JSON.stringify({
          user,
          durable: idOf(durable).slice(0, 8),
          before: show(got),
          after: show(items(client.received)),
          welcome,
          stored,
          seq,
        }));
      }
      assert.equal(durableCount, 1, `${user} got the durable item exactly once`);
      const bySeq = new Map<number, string>();
      for (const f of all) {
        const seen = bySeq.get(f.seq);
        assert.ok(seen === undefined || seen === f.envelope.metadata.id, `${user} seq ${f.seq}`);
        bySeq.set(f.seq, f.envelope.metadata.id);
      }
      await client.close();
    }
  } finally {
    await second.kill("SIGTERM");
  }

  // Every member's stream holds the durable item once, online or not.
  const kv = await Deno.openKv(path);
  try {
    const counts = new Map<number, number>();
    for (const user of users) {
      let n = 0;
      for await (const e of kv.list<StreamItem>({ prefix: keys.streamPrefix(user) })) {
        if (e.value.id === idOf(durable)) n++;
      }
      counts.set(n, (counts.get(n) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { 1: MEMBERS });
  } finally {
    kv.close();
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("after a SIGKILL, connections wait for the fan-outs that sent items before writing them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relais-early-kill-" });
  const path = `${dir}/relais.kv`;
  const users = await writeBulkDirectory(path, MEMBERS, GROUP);
  // What a process killed right after such a publish leaves: the user's head had reserved
  // seqs 1–1000 and given seq 5 to the event, whose item went out before its job wrote
  // anything. The user comes late in the job's order.
  const user = bulkUserId(MEMBERS - 2);
  const e = makeEnvelope("NOTIFICATION");
  {
    const kv = await Deno.openKv(path);
    const store = createKvStore(kv, { recentWindowMs: 60_000 });
    await store.reserveSeqs(user, 1000);
    await store.createEvent(e, users, result(e, users.length), {
      assigned: new Map([[user, 5]]),
    });
    kv.close();
  }
  const server = await spawnServer({
    RELAIS_KV_PATH: path,
    RELAIS_OUTBOX_DIR: `${dir}/outbox`,
  });
  try {
    // The client had seen nothing of its stream: it comes back at once, and leaves again.
    const first = await hello(server, user, { after: 0 });
    await first.client.close();
    await eventually(
      async () => {
        const res = await fetch(`${server.origin}/v1/events/${e.metadata.id}`, {
          headers: { "x-api-key": SERVICE_KEY },
        });
        return (await res.json()).fan_out === "done";
      },
      60_000,
      "the resumed fan-out to finish",
    );
    // Back from where that welcome left it; a live event after the replay as a barrier.
    const again = await hello(server, user, {
      after: first.welcome.seq,
      epoch: first.welcome.epoch,
    });
    const marker = envelope([user]);
    await publish(server, marker);
    await again.client.next((f) => f.envelope?.metadata.id === idOf(marker), 20_000);
    await again.client.close();
    const got = [...items(first.client.received), ...items(again.client.received)]
      .filter((f) => f.envelope.metadata.id === e.metadata.id);
    assert.deepEqual(got.map((f) => f.seq), [5], "the item is replayed once, at its seq");
  } finally {
    await server.kill("SIGTERM");
  }
  await Deno.remove(dir, { recursive: true });
});
