/**
 * Fuzzing the edges: thousands of malformed WebSocket frames and HTTP bodies against a
 * real server on loopback — broken JSON, wrong types, huge strings, deep nesting, lone
 * surrogates, wrong content types, random bytes. The server must never answer 5xx (or an
 * `internal` error frame), never crash, and a bystander must keep receiving meanwhile.
 *
 * The generator is seeded (`FUZZ_SEED` to replay a run) and the run is bounded in count.
 */

import assert from "node:assert/strict";
import { envelope, SERVICE_KEY, startServer, type TestServer } from "../_support/server.ts";
import { connect, type Frame, type TestClient } from "../_support/ws_client.ts";

const WS_FRAMES = 6_000;
const HTTP_BODIES = 4_500;
const HTTP_CONCURRENCY = 8;

/** mulberry32: small, fast, seedable. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)];
  return { next, int, pick };
}

type Rng = ReturnType<typeof prng>;

const LONE = ["\\ud800", "\\udfff", "\\udc00x", "a\\ud83d", "\\ud83d\\ud83d"];

function randomBytes(rng: Rng, n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(256);
  return out;
}

function weirdValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(12)) {
    case 0:
      return null;
    case 1:
      return rng.next() * 1e308 * (rng.next() < 0.5 ? -1 : 1);
    case 2:
      return rng.int(2) === 0;
    case 3:
      return "x".repeat(rng.pick([0, 1, 255, 10_000, 70_000]));
    case 4:
      return depth < 3 ? [weirdValue(rng, depth + 1), weirdValue(rng, depth + 1)] : [];
    case 5:
      return depth < 3
        ? { [rng.pick(["a", "__proto__", "constructor", ""])]: weirdValue(rng, depth + 1) }
        : {};
    case 6:
      return -1;
    case 7:
      return Number.MAX_SAFE_INTEGER + 2;
    case 8:
      return "../../etc/passwd";
    case 9:
      return "\u0000\u001f\u202e";
    case 10:
      return "<script>alert(1)</script>";
    default:
      return rng.int(1_000_000);
  }
}

/** Replaces one random leaf (or adds a key) of a JSON value with a weird value. */
function mutate(rng: Rng, value: unknown): unknown {
  if (typeof value !== "object" || value === null) return weirdValue(rng);
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value)
    ? [...value]
    : { ...(value as Record<string, unknown>) };
  const keys = Object.keys(copy);
  if (keys.length === 0 || rng.next() < 0.15) {
    // defineProperty: a "__proto__" key becomes an own property, as JSON.parse makes it.
    Object.defineProperty(copy, rng.pick(["extra", "type", "id", "ref", "__proto__"]), {
      value: weirdValue(rng),
      enumerable: true,
      writable: true,
      configurable: true,
    });
    return copy;
  }
  const key = rng.pick(keys);
  const child = (copy as Record<string, unknown>)[key];
  (copy as Record<string, unknown>)[key] = rng.next() < 0.5 ? mutate(rng, child) : weirdValue(rng);
  return copy;
}

/** Text that is malformed in one of the ways the test names. */
function malformedText(rng: Rng, valid: unknown): string {
  const json = JSON.stringify(valid);
  switch (rng.int(9)) {
    case 0: // broken JSON: truncated
      return json.slice(0, rng.int(json.length));
    case 1: // broken JSON: a stray character somewhere
    {
      const at = rng.int(json.length);
      return json.slice(0, at) + rng.pick(["{", "]", '"', ",", "\\", ":", "\u0000"]) +
        json.slice(at);
    }
    case 2: // wrong types
      return JSON.stringify(mutate(rng, valid));
    case 3: // huge strings
      return JSON.stringify({
        ...(valid as object),
        huge: "é".repeat(rng.pick([30_000, 300_000])),
      });
    case 4: // deep nesting
    {
      const depth = rng.pick([40, 1_000, 50_000]);
      return "[".repeat(depth) + "]".repeat(depth);
    }
    case 5: // lone surrogates, escaped so the JSON text itself is valid UTF-8
    {
      const at = json.indexOf('":"');
      return at < 0
        ? `"${rng.pick(LONE)}"`
        : `${json.slice(0, at + 3)}${rng.pick(LONE)}${json.slice(at + 3)}`;
    }
    case 6: // not JSON at all
      return rng.pick(["", " ", "null", "true", "[]", "{}", "NaN", "undefined", "\u0000\u0000"]);
    case 7: // JSON of the wrong shape
      return JSON.stringify(rng.pick([[valid], "string", 12, { data: valid }]));
    default: // random printable garbage
      return Array.from({ length: rng.int(200) }, () => String.fromCharCode(32 + rng.int(95))).join(
        "",
      );
  }
}

const validFrames = (): unknown[] => [
  { type: "hello", token: "x.y.z", after: 0 },
  { type: "ack", id: crypto.randomUUID(), ref: "r" },
  { type: "read", id: crypto.randomUUID() },
  { type: "ping", ref: "p" },
  { type: "msg.send", conversation: "c1", text: "hello", client_id: "k1" },
  { type: "typing", conversation: "c1" },
  { type: "presence.set", status: "away" },
];

interface Tally {
  sent: number;
  serverErrors: string[];
}

async function fuzzWebSocket(server: TestServer, rng: Rng, tally: Tally) {
  const token = await server.token("fuzzer", { ttlSeconds: 3600 });
  let client: TestClient | undefined;
  let reconnects = 0;
  const check = (frames: Frame[]) => {
    for (const f of frames) {
      if (f.type === "error" && f.code === "internal") tally.serverErrors.push(`ws: ${f.message}`);
    }
  };
  async function fresh() {
    if (client) {
      check(client.received);
      await client.close();
    }
    client = await connect(server.wsUrl);
    client.send({ type: "hello", token });
    await client.next((f) => f.type === "welcome" || f.type === "error", 5000).catch(() => {});
    reconnects++;
  }
  await fresh();
  let batch = 0;
  while (tally.sent < WS_FRAMES) {
    if (client!.socket.readyState !== WebSocket.OPEN) await fresh();
    const kind = rng.int(10);
    try {
      if (kind === 0) client!.sendRaw(randomBytes(rng, 1 + rng.int(512)).buffer as ArrayBuffer);
      else client!.sendRaw(malformedText(rng, rng.pick(validFrames())));
    } catch {
      await fresh();
      continue;
    }
    tally.sent++;
    if (++batch % 100 === 0 && client!.socket.readyState === WebSocket.OPEN) {
      // Let the server catch up: its answers to this batch come before the pong.
      const ref = `sync-${batch}`;
      client!.send({ type: "ping", ref });
      await client!.next((f) => f.type === "pong" && f.ref === ref, 10_000).catch(() => {});
    }
  }
  check(client!.received);
  await client!.close();
  return reconnects;
}

interface Target {
  method: string;
  path: string;
  auth: "service" | "user";
  valid: unknown;
}

function targets(): Target[] {
  return [
    { method: "POST", path: "/v1/events", auth: "service", valid: envelope(["u1"]) },
    {
      method: "PUT",
      path: "/v1/admin/controls",
      auth: "service",
      valid: { scope: { type: "USER", id: "x" }, features: ["email"], reason: "r" },
    },
    {
      method: "PUT",
      path: "/v1/users/fuzz-user",
      auth: "service",
      valid: { email: "a@b.org", name: "A", category: "STUDENT", roles: ["R"] },
    },
    { method: "PUT", path: "/v1/me/preferences", auth: "user", valid: { locale: "fr" } },
    { method: "POST", path: "/v1/conversations", auth: "user", valid: { members: ["u2"] } },
    { method: "POST", path: "/v1/me/notifications/read-all", auth: "user", valid: {} },
    { method: "POST", path: "/v1/connect-tickets", auth: "user", valid: {} },
  ];
}

const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "text/plain",
  "multipart/form-data; boundary=x",
  "application/x-www-form-urlencoded",
  "application/jsonx",
  "",
];

async function fuzzHttp(server: TestServer, rng: Rng, tally: Tally) {
  const userToken = await server.token("fuzz-user", { ttlSeconds: 3600 });
  const list = targets();
  let sent = 0;
  const statuses = new Map<number, number>();
  async function one() {
    const target = rng.pick(list);
    const headers: Record<string, string> = target.auth === "service"
      ? { "x-api-key": SERVICE_KEY }
      : { authorization: `Bearer ${userToken}` };
    const type = rng.next() < 0.8 ? "application/json" : rng.pick(CONTENT_TYPES);
    if (type) headers["content-type"] = type;
    let body: BodyInit;
    const kind = rng.int(10);
    if (kind === 0) body = randomBytes(rng, 1 + rng.int(2048));
    else if (kind === 1) body = new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0xc0, 0x80, 0x22, 0x7d]); // invalid UTF-8
    else body = malformedText(rng, target.valid);
    let path = target.path;
    if (rng.next() < 0.1) {
      path += rng.pick(["?after=-1", "?limit=abc", `?x=${"%ff".repeat(50)}`, "/..%2f"]);
    }
    const res = await fetch(`${server.origin}${path}`, { method: target.method, headers, body });
    await res.arrayBuffer();
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status >= 500) tally.serverErrors.push(`http ${res.status} ${target.method} ${path}`);
  }
  await Promise.all(Array.from({ length: HTTP_CONCURRENCY }, async () => {
    while (sent < HTTP_BODIES) {
      sent++;
      await one();
    }
  }));
  tally.sent += sent;
  return statuses;
}

Deno.test({
  name:
    "thousands of malformed frames and bodies get 4xx answers, never 5xx, while others keep receiving",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const seed = Number(Deno.env.get("FUZZ_SEED") ?? Date.now() % 1_000_000);
    const server = await startServer({
      RELAIS_RATE_EVENTS: "off",
      RELAIS_RATE_CONNECTS: "off",
      RELAIS_RATE_AUTH_FAILURES: "off",
      RELAIS_RATE_CONVERSATIONS: "off",
      // Every event of the bystander is pushed on its own (no folding into summaries).
      RELAIS_PUSH_BUDGET: "100000",
    });
    const started = performance.now();
    try {
      const bystander = await server.login("bystander");
      assert.equal(bystander.welcome.type, "welcome");
      // The bystander receives a steady trickle of events during the whole run.
      let fuzzing = true;
      const published: string[] = [];
      const trickle = (async () => {
        while (fuzzing) {
          const e = envelope(["bystander"], { metadata: { type: "REALTIME" } });
          const res = await server.publish(e);
          assert.equal(res.status, 202);
          published.push((e.metadata as { id: string }).id);
          await new Promise((r) => setTimeout(r, 50)); // paces the trickle, not synchronisation
        }
      })();

      const wsTally: Tally = { sent: 0, serverErrors: [] };
      const httpTally: Tally = { sent: 0, serverErrors: [] };
      const [reconnects, statuses] = await Promise.all([
        fuzzWebSocket(server, prng(seed), wsTally),
        fuzzHttp(server, prng(seed + 1), httpTally),
      ]);
      fuzzing = false;
      await trickle;

      const total = wsTally.sent + httpTally.sent;
      assert.ok(total >= 10_000, `sent ${total}`);
      assert.deepEqual(
        [...wsTally.serverErrors, ...httpTally.serverErrors].slice(0, 10),
        [],
        `seed ${seed}`,
      );
      // The server is alive and the bystander got every event, on the same socket.
      assert.equal((await server.request("/healthz")).status, 200);
      assert.equal(bystander.client.socket.readyState, WebSocket.OPEN);
      const last = published[published.length - 1];
      await bystander.client.next(
        (f) => f.type === "event" && f.envelope.metadata.id === last,
        10_000,
      );
      const got = new Set(
        bystander.client.received.filter((f) => f.type === "event").map((f) =>
          f.envelope.metadata.id
        ),
      );
      assert.deepEqual(published.filter((id) => !got.has(id)), []);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      console.log(
        `fuzz seed ${seed}: ${wsTally.sent} WS frames (${reconnects} connections), ${httpTally.sent} HTTP bodies in ${seconds} s; ` +
          `statuses ${
            JSON.stringify(Object.fromEntries([...statuses].sort()))
          }; bystander got ${published.length} events`,
      );
    } finally {
      await server.close();
    }
  },
});

Deno.test({
  name: "JSON nested deeper than the cap is refused as invalid_json over WS and HTTP",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const server = await startServer({ RELAIS_MAX_JSON_DEPTH: "8" });
    try {
      const { client } = await server.login("deep");
      const nested = (n: number) => "[".repeat(n) + "]".repeat(n);
      client.sendRaw(`{"type":"ping","ref":"x","deep":${nested(10)}}`);
      const refused = await client.next((f) => f.type === "error");
      assert.equal(refused.code, "invalid_json");
      assert.match(refused.message, /deeper than 8/);
      // Brackets inside strings do not count, and the socket still works.
      client.sendRaw(JSON.stringify({ type: "ping", ref: nested(20) }));
      assert.equal(
        (await client.next((f) => f.type === "error" || f.type === "pong")).ref,
        nested(20),
      );
      client.send({ type: "ping", ref: "ok" });
      assert.equal((await client.next((f) => f.type === "pong")).ref, "ok");

      const deep = envelope(["deep"], { payload: { a: JSON.parse(nested(10)) } });
      const res = await server.publish(deep);
      assert.equal(res.status, 400);
      assert.equal((res.body.error as { code: string }).code, "invalid_json");
      const shallow = envelope(["deep"], { payload: { a: JSON.parse(nested(3)) } });
      assert.equal((await server.publish(shallow)).status, 202);
    } finally {
      await server.close();
    }
  },
});
