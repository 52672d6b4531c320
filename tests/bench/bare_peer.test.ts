/**
 * The bare WebSocket peer the bench measures relais against: its targeted publishes (the
 * latency scenario's floor) reach only the sockets of the users named, each in seq order.
 */

import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);

/** Starts the bare peer on a free loopback port; answers its origin and how to stop it. */
async function startBare() {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "bench/peers/bare_ws.ts"],
    cwd: root,
    env: { HOST: "127.0.0.1", PORT: "0" },
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
