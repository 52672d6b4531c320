/**
 * End-to-end: a stream position is an epoch plus a seq, on every transport. The welcome
 * tells the epoch, every resume sends it back, a malformed one is refused naming the
 * field, and a restart starts a new epoch while durable items still replay exactly.
 */

import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { LEASE_SIZE } from "../../src/delivery/stream_heads.ts";
import { spawnServer } from "../_support/process.ts";
import { envelope, JWT_SECRET, SERVICE_KEY, startServer } from "../_support/server.ts";
import { openSse } from "../_support/sse_client.ts";
import { connect, type Frame } from "../_support/ws_client.ts";

const EPOCH = /^[A-Za-z0-9_-]{1,64}$/;

interface Batch {
  session: string;
  epoch: string;
  seq: number;
  frames: Frame[];
  error?: { code: string; message: string; details?: { path: string }[] };
}

async function poll(origin: string, query: string, bearer: string) {
  const res = await fetch(`${origin}/v1/poll?${query}`, {
    headers: { authorization: `Bearer ${bearer}` },
  });
  return { status: res.status, body: await res.json() as Batch };
}

/** Publishes `count` notifications to `user`; returns their ids in order. */
async function publishMany(
  publish: (e: unknown) => Promise<{ status: number }>,
  user: string,
  count: number,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const e = envelope([user]);
    assert.equal((await publish(e)).status, 202);
    ids.push((e.metadata as { id: string }).id);
  }
  return ids;
}

Deno.test("a WebSocket welcome carries the epoch, and a resume echoing it replays exactly", async () => {
  const server = await startServer();
  try {
    const first = await server.login("camille");
    const epoch = first.welcome.epoch as string;
    assert.match(epoch, EPOCH);
    assert.equal(epoch, server.relais.sessions.epochOf("camille"));
    await first.client.close();
    const ids = await publishMany(server.publish, "camille", 3);

    const again = await server.login("camille", { after: 1, epoch });
    assert.equal(again.welcome.type, "welcome");
    assert.equal(again.welcome.epoch, epoch);
    assert.equal(again.welcome.recovered, true);
    assert.equal(again.welcome.seq, 3);
    const replayed = [await again.client.next(), await again.client.next()];
    assert.deepEqual(replayed.map((f) => [f.type, f.seq]), [["event", 2], ["event", 3]]);
    assert.deepEqual(replayed.map((f) => f.envelope.metadata.id), ids.slice(1));
    // Barrier: the next frame after the replay is the next live item, nothing in between.
    const [live] = await publishMany(server.publish, "camille", 1);
    const next = await again.client.next();
    assert.deepEqual([next.type, next.seq, next.envelope.metadata.id], ["event", 4, live]);
  } finally {
    await server.close();
  }
});

Deno.test("a resume in the head's epoch replays the durable items it missed from memory, reading no stream", async () => {
  let reads = 0;
  const server = await startServer({}, {
    adapt: (deps) => ({
      ...deps,
      store: {
        ...deps.store,
        readStream: (...args: Parameters<typeof deps.store.readStream>) => {
          reads++;
          return deps.store.readStream(...args);
        },
      },
    }),
  });
  try {
    const first = await server.login("camille");
    const epoch = first.welcome.epoch as string;
    await first.client.close();
    // Away, her head still open: two notifications pass through it.
    const ids = await publishMany(server.publish, "camille", 2);
    reads = 0;
    const again = await server.login("camille", { after: 0, epoch });
    assert.equal(again.welcome.recovered, true);
    const replayed = [await again.client.next(), await again.client.next()];
    assert.deepEqual(replayed.map((f) => [f.type, f.seq]), [["event", 1], ["event", 2]]);
    assert.deepEqual(replayed.map((f) => f.envelope.metadata.id), ids);
    assert.equal(reads, 0, "the window held every item after the position");
    // From another epoch, the store is read.
    const other = await server.login("camille", { after: 0, epoch: "an-older-epoch" });
    assert.equal(other.welcome.recovered, false);
    assert.equal(reads, 1);
  } finally {
    await server.close();
  }
});

Deno.test("a WebSocket resume from another epoch replays every stored item, recovered false", async () => {
  const server = await startServer();
  try {
    const ids = await publishMany(server.publish, "yanis", 2);
    const { client, welcome } = await server.login("yanis", { after: 0, epoch: "an-older-epoch" });
    assert.notEqual(welcome.epoch, "an-older-epoch");
    // Ephemeral items of another epoch are gone with its memory: not provably complete.
    assert.equal(welcome.recovered, false);
    const replayed = [await client.next(), await client.next()];
    assert.deepEqual(replayed.map((f) => f.envelope?.metadata.id), ids);
  } finally {
    await server.close();
  }
});

Deno.test("a WebSocket hello with a malformed epoch gets an error frame naming the field", async () => {
  const server = await startServer();
  try {
    for (const epoch of ["not an epoch", "a:1", "", "x".repeat(65), 42]) {
      const { client, welcome } = await server.login("emma", { after: 0, epoch });
      assert.equal(welcome.type, "error", JSON.stringify(epoch));
      assert.equal(welcome.code, "validation_failed");
      assert.match(welcome.message as string, /"epoch": expected the epoch of a welcome/);
      // The socket stays usable: a correct hello is welcomed.
      client.send({ type: "hello", token: await server.token("emma"), after: 0 });
      assert.equal((await client.next()).type, "welcome");
      await client.close();
    }
  } finally {
    await server.close();
  }
});

Deno.test("SSE ids are epoch:seq, and Last-Event-ID resumes in that form or as a bare seq", async () => {
  const server = await startServer();
  const bearer = { authorization: `Bearer ${await server.token("lucas")}` };
  try {
    const sse = await openSse(`${server.origin}/v1/sse`, bearer);
    const welcome = await sse.next();
    const epoch = welcome.frame.epoch as string;
    assert.match(epoch, EPOCH);
    assert.equal(welcome.id, `${epoch}:0`);
    const ids = await publishMany(server.publish, "lucas", 4);
    const live = [await sse.next(), await sse.next(), await sse.next(), await sse.next()];
    assert.deepEqual(live.map((e) => e.id), [1, 2, 3, 4].map((s) => `${epoch}:${s}`));
    await sse.close();

    // A bare seq is still a position, but with no epoch: the stored items replay exactly,
    // and the resume is not recovered.
    const resumes: [string, boolean][] = [[`${epoch}:2`, true], ["2", false]];
    for (const [lastEventId, recovered] of resumes) {
      const resumed = await openSse(`${server.origin}/v1/sse`, {
        ...bearer,
        "last-event-id": lastEventId,
      });
      try {
        const again = await resumed.next();
        assert.equal(again.frame.type, "welcome");
        assert.equal(again.frame.epoch, epoch);
        assert.equal(again.frame.recovered, recovered, lastEventId);
        const replayed = [await resumed.next(), await resumed.next()];
        assert.deepEqual(replayed.map((e) => e.id), [`${epoch}:3`, `${epoch}:4`], lastEventId);
        assert.deepEqual(replayed.map((e) => e.frame.envelope.metadata.id), ids.slice(2));
      } finally {
        await resumed.close();
      }
    }

    const byQuery = await openSse(`${server.origin}/v1/sse?after=3&epoch=${epoch}`, bearer);
    try {
      assert.equal((await byQuery.next()).frame.recovered, true);
      assert.equal((await byQuery.next()).id, `${epoch}:4`);
    } finally {
      await byQuery.close();
    }
  } finally {
    await server.close();
  }
});

Deno.test("SSE refuses a malformed epoch in the query or in Last-Event-ID with a 400 naming it", async () => {
  const server = await startServer();
  const bearer = { authorization: `Bearer ${await server.token("lucas")}` };
  try {
    const badQuery = await openSse(`${server.origin}/v1/sse?after=1&epoch=a%3Ab`, bearer);
    assert.equal(badQuery.status, 400);
    const body = badQuery.body as { error: { code: string; details: { path: string }[] } };
    assert.equal(body.error.code, "validation_failed");
    assert.equal(body.error.details[0].path, "epoch");
    for (const header of ["bad epoch:2", "epoch:", ":2", "e:1:2", `${"x".repeat(65)}:2`]) {
      const badHeader = await openSse(`${server.origin}/v1/sse`, {
        ...bearer,
        "last-event-id": header,
      });
      assert.equal(badHeader.status, 400, header);
      const error = (badHeader.body as { error: { details: { path: string }[] } }).error;
      assert.equal(error.details[0].path, "Last-Event-ID", header);
    }
  } finally {
    await server.close();
  }
});

Deno.test("poll answers carry the epoch, and after with epoch resumes exactly", async () => {
  const server = await startServer();
  const bearer = await server.token("ines");
  try {
    const first = await poll(server.origin, "timeout=0", bearer);
    assert.equal(first.status, 200);
    const epoch = first.body.epoch;
    assert.match(epoch, EPOCH);
    assert.equal(first.body.frames[0].epoch, epoch);
    const ids = await publishMany(server.publish, "ines", 3);
    const next = await poll(
      server.origin,
      `session=${first.body.session}&after=${first.body.seq}&epoch=${epoch}&timeout=2000`,
      bearer,
    );
    assert.equal(next.body.epoch, epoch);

    // A fresh session resuming after seq 1 of this epoch gets exactly the two after it.
    const resumed = await poll(server.origin, `after=1&epoch=${epoch}&timeout=0`, bearer);
    assert.equal(resumed.status, 200);
    assert.equal(resumed.body.epoch, epoch);
    const [welcome, ...items] = resumed.body.frames;
    assert.deepEqual([welcome.type, welcome.epoch, welcome.recovered], ["welcome", epoch, true]);
    assert.deepEqual(items.map((f) => f.seq), [2, 3]);
    assert.deepEqual(items.map((f) => f.envelope.metadata.id), ids.slice(1));
    assert.equal(resumed.body.seq, 3);
  } finally {
    await server.close();
  }
});

Deno.test("poll refuses a malformed epoch with a 400 naming it", async () => {
  const server = await startServer();
  const bearer = await server.token("ines");
  try {
    for (const epoch of ["a%3Ab", "not%20one", "", "x".repeat(65)]) {
      const res = await poll(server.origin, `after=0&epoch=${epoch}&timeout=0`, bearer);
      assert.equal(res.status, 400, epoch);
      assert.equal(res.body.error?.code, "validation_failed");
      assert.equal(res.body.error?.details?.[0].path, "epoch", epoch);
    }
  } finally {
    await server.close();
  }
});

const token = (sub: string) =>
  new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setIssuedAt()
    .setExpirationTime("1h").sign(new TextEncoder().encode(JWT_SECRET));

Deno.test("a restart on the same KV starts a new epoch, and durable items still replay exactly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "relais-epoch-" });
  const env = { RELAIS_KV_PATH: `${dir}/relais.kv` };
  const publishTo = (origin: string) => async (e: unknown) => {
    const res = await fetch(`${origin}/v1/events`, {
      method: "POST",
      headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
      body: JSON.stringify(e),
    });
    await res.body?.cancel();
    return { status: res.status };
  };
  const hello = async (wsUrl: string, position: Record<string, unknown>) => {
    const client = await connect(wsUrl);
    client.send({ type: "hello", token: await token("camille"), ...position });
    return { client, welcome: await client.next() };
  };
  try {
    const first = await spawnServer(env);
    let epoch: string;
    let ids: string[];
    try {
      const { client, welcome } = await hello(first.wsUrl, {});
      epoch = welcome.epoch;
      assert.match(epoch, EPOCH);
      ids = await publishMany(publishTo(first.origin), "camille", 3);
      for (const seq of [1, 2, 3]) assert.equal((await client.next()).seq, seq);
      await client.close();
    } finally {
      await first.kill("SIGKILL");
    }

    const second = await spawnServer(env);
    try {
      const { client, welcome } = await hello(second.wsUrl, { after: 1, epoch });
      assert.equal(welcome.type, "welcome");
      assert.match(welcome.epoch, EPOCH);
      assert.notEqual(welcome.epoch, epoch);
      // The first process's head may have handed ephemeral items out of memory: the
      // resume cannot be proved complete, though every stored item is replayed.
      assert.equal(welcome.recovered, false);
      // The new head's range starts above everything the first one reserved.
      assert.equal(welcome.seq, LEASE_SIZE);
      const replayed = [await client.next(), await client.next()];
      assert.deepEqual(replayed.map((f) => [f.type, f.seq]), [["event", 2], ["event", 3]]);
      assert.deepEqual(replayed.map((f) => f.envelope.metadata.id), ids.slice(1));
      // Barrier: the next frame is the next live item; no seq is reused.
      const [live] = await publishMany(publishTo(second.origin), "camille", 1);
      const next = await client.next();
      assert.deepEqual([next.seq, next.envelope.metadata.id], [LEASE_SIZE + 1, live]);
      await client.close();
    } finally {
      await second.kill("SIGTERM");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
