/**
 * The bare WebSocket peer the bench measures relais against: its targeted publishes (the
 * latency scenario's floor) reach only the sockets of the users named, each in seq order;
 * with `BARE_ACTORS=1` (the `bare-actor` peer) every frame goes through the socket's actor.
 */

import assert from "node:assert/strict";
import { eventually } from "../_support/eventually.ts";

const root = new URL("../../", import.meta.url);

/** Starts the bare peer on a free loopback port; answers its origin and how to stop it. */
async function startBare(env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "bench/peers/bare_ws.ts"],
    cwd: root,
    env: { HOST: "127.0.0.1", PORT: "0", ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/listening on (http:\/\/\S+)/.test(out)) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`The bare peer exited: ${out}`);
    out += value;
  }
  const origin = /listening on (http:\/\/\S+)/.exec(out)![1];
  return {
    origin,
    label: out.split(" listening")[0].trim(),
    async stop() {
      await child.stdin.close();
      await lines.cancel();
      await child.status;
    },
  };
}

/** A client that says `hello` as `user` (or as nobody) and keeps every frame it gets. */
async function client(origin: string, user?: string) {
  const ws = new WebSocket(`${origin.replace("http", "ws")}/v1/ws`, "relais.v1");
  const frames: { type: string; seq?: number; envelope?: { metadata: { id: string } } }[] = [];
  const welcomed = new Promise<void>((resolve, reject) => {
    ws.onmessage = (e) => {
      const frame = JSON.parse(String(e.data));
      frames.push(frame);
      if (frame.type === "welcome") resolve();
    };
    ws.onerror = () => reject(new Error("socket error"));
  });
  await new Promise((r) => ws.onopen = r);
  ws.send(JSON.stringify({ type: "hello", token: "bare", ...(user ? { user } : {}) }));
  await welcomed;
  return { ws, frames, events: () => frames.filter((f) => f.type === "event") };
}

/** Publishes what relais would take, to a USER audience. */
async function publish(origin: string, id: string, targets: unknown) {
  const res = await fetch(`${origin}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      metadata: { id, type: "REALTIME" },
      payload: { t: 1 },
      routing: { audience: { type: "USER", targets } },
    }),
  });
  assert.equal(res.status, 202);
  assert.deepEqual(await res.json(), { id });
}

const settle = () => new Promise((r) => setTimeout(r, 200));

Deno.test("the bare peer sends a targeted publish to its users' sockets only, each in seq order", async () => {
  const bare = await startBare();
  const a = await client(bare.origin, "u1");
  const b = await client(bare.origin, "u2");
  // A user named like an object's own property is one more user, not a crash.
  const c = await client(bare.origin, "constructor");
  const anonymous = await client(bare.origin);
  try {
    await publish(bare.origin, "e1", ["u1"]);
    await publish(bare.origin, "e2", ["u1", "u2", "nobody", "__proto__"]);
    await publish(bare.origin, "e3", ["constructor"]);
    await settle();
    assert.deepEqual(a.events().map((f) => [f.seq, f.envelope?.metadata.id]), [[1, "e1"], [
      2,
      "e2",
    ]]);
    assert.deepEqual(b.events().map((f) => [f.seq, f.envelope?.metadata.id]), [[1, "e2"]]);
    assert.deepEqual(c.events().map((f) => [f.seq, f.envelope?.metadata.id]), [[1, "e3"]]);
    assert.equal(anonymous.events().length, 0, "a socket no hello named gets no targeted event");
    // Bad input gets an answer, not a crash: the peer still serves afterwards.
    const bad = await fetch(`${bare.origin}/v1/events`, { method: "POST", body: "{" });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
    anonymous.ws.send('{"type":"hello",');
    await publish(bare.origin, "e4", ["u2"]);
    await settle();
    assert.deepEqual(b.events().map((f) => f.seq), [1, 2]);
    // The envelope is the client's: what relais sends, without the routing.
    assert.deepEqual(a.events()[0].envelope, {
      metadata: { id: "e1", type: "REALTIME" },
      payload: { t: 1 },
    });
  } finally {
    for (const s of [a, b, c, anonymous]) s.ws.close();
    await bare.stop();
  }
});

/** The peer's counts: open sockets, their actors, and the frames the actors sent. */
async function health(origin: string): Promise<Record<string, number>> {
  return await (await fetch(`${origin}/healthz`)).json();
}

Deno.test("the bare-actor peer sends every frame through the socket's actor, ended with its socket", async () => {
  const bare = await startBare({ BARE_ACTORS: "1" });
  assert.equal(bare.label, "bare-actor");
  const a = await client(bare.origin, "u1");
  const b = await client(bare.origin, "u2");
  try {
    assert.deepEqual(await health(bare.origin), {
      ok: true,
      sockets: 2,
      actors: 2,
      sentByActors: 0,
    });
    const res = await fetch(`${bare.origin}/broadcast`, {
      method: "POST",
      body: JSON.stringify({ metadata: { id: "b1" }, payload: {} }),
    });
    assert.deepEqual(await res.json(), { sent: 2 });
    await publish(bare.origin, "e1", ["u2"]);
    await eventually(() => b.events().length === 2, 3000, "u2 got the broadcast and its own event");
    await eventually(() => a.events().length === 1, 3000, "u1 got the broadcast");
    assert.deepEqual(b.events().map((f) => f.envelope?.metadata.id), ["b1", "e1"]);
    // Each of the three frames went out through an actor's action, none around it.
    assert.equal((await health(bare.origin)).sentByActors, 3);
    // A closed socket's actor is gone, and later frames go to the others only.
    b.ws.close();
    await eventually(
      async () => (await health(bare.origin)).actors === 1,
      3000,
      "u2's actor ended",
    );
    await publish(bare.origin, "e2", ["u1", "u2"]);
    await eventually(() => a.events().length === 2, 3000, "u1 got e2");
    assert.equal((await health(bare.origin)).sentByActors, 4);
  } finally {
    for (const s of [a, b]) s.ws.close();
    await bare.stop();
  }
});

Deno.test("the bare peer without actors sends straight to its sockets", async () => {
  const bare = await startBare();
  const a = await client(bare.origin, "u1");
  try {
    assert.equal(bare.label, "bare");
    await publish(bare.origin, "e1", ["u1"]);
    await eventually(() => a.events().length === 1, 3000, "u1 got e1");
    assert.deepEqual(await health(bare.origin), {
      ok: true,
      sockets: 1,
      actors: 0,
      sentByActors: 0,
    });
  } finally {
    a.ws.close();
    await bare.stop();
  }
});
