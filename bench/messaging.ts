/**
 * Durable message throughput across many conversations, and send→receive latency, of a
 * relais child process on a file KV (SQLite). A rough script; the full benchmark harness
 * lives elsewhere.
 *
 *   deno run -A bench/messaging.ts [conversations=100] [members=3] [perSender=20]
 *
 * Throughput: every member of every conversation sends `perSender` messages over its
 * WebSocket at once; a message counts when its sender gets the confirmation (its own
 * `msg` frame, sent only after the KV commit). Latency: from `msg.send` to the `msg`
 * frame at another member, both measured by this process: at rest (one message at a time
 * in one conversation), during the burst (mostly queueing), and under a steady load of
 * `rate` messages/s spread over every conversation for 5 s.
 *
 *   deno run -A bench/messaging.ts [conversations=100] [members=3] [perSender=20] [rate=500]
 */

import { spawnServer } from "../tests/_support/process.ts";
import { SERVICE_KEY } from "../tests/_support/server.ts";
import { connect, type Frame, type TestClient } from "../tests/_support/ws_client.ts";
import { SignJWT } from "jose";
import { JWT_SECRET } from "../tests/_support/server.ts";

const conversations = Number(Deno.args[0] ?? 100);
const members = Number(Deno.args[1] ?? 3);
const perSender = Number(Deno.args[2] ?? 20);
const rate = Number(Deno.args[3] ?? 500);

const secret = new TextEncoder().encode(JWT_SECRET);
const token = (sub: string) =>
  new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setIssuedAt()
    .setExpirationTime("1h").sign(secret);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function summary(values: number[]) {
  const sorted = values.toSorted((a, b) => a - b);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    count: sorted.length,
    p50_ms: round(percentile(sorted, 0.5)),
    p95_ms: round(percentile(sorted, 0.95)),
    p99_ms: round(percentile(sorted, 0.99)),
    max_ms: round(sorted.at(-1) ?? NaN),
  };
}

async function login(wsUrl: string, user: string): Promise<TestClient> {
  const client = await connect(wsUrl);
  client.send({ type: "hello", token: await token(user) });
  await client.next((f) => f.type === "welcome", 10_000);
  return client;
}

async function createGroup(origin: string, users: string[]): Promise<string> {
  const res = await fetch(`${origin}/v1/conversations`, {
    method: "POST",
    headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
    body: JSON.stringify({ members: users, title: "bench" }),
  });
  if (res.status !== 201) throw new Error(`Create answered ${res.status}`);
  return (await res.json()).id;
}

const dir = await Deno.makeTempDir({ prefix: "relais-bench-msg-" });
const server = await spawnServer({
  RELAIS_KV_PATH: `${dir}/relais.kv`,
  RELAIS_CONVERSATION_POLICY: "any",
  RELAIS_RATE_MESSAGES: "off",
  RELAIS_RATE_CONNECTS: "off",
  RELAIS_LOG_LEVEL: "error",
});
try {
  // --- latency at rest: one message at a time, A → B ---
  const quiet = await createGroup(server.origin, ["lat-a", "lat-b"]);
  const a = await login(server.wsUrl, "lat-a");
  const b = await login(server.wsUrl, "lat-b");
  const atRest: number[] = [];
  for (let i = 0; i < 200; i++) {
    const started = performance.now();
    a.send({ type: "msg.send", conversation: quiet, text: `ping ${i}`, client_id: `l${i}` });
    await b.next((f) => f.type === "msg" && f.client_id === `l${i}`, 10_000);
    atRest.push(performance.now() - started);
    a.received.length = 0;
    b.received.length = 0;
  }
  await a.close();
  await b.close();

  // --- throughput and latency under load ---
  const groups: { id: string; clients: TestClient[]; users: string[] }[] = [];
  for (let c = 0; c < conversations; c++) {
    const users = Array.from({ length: members }, (_, m) => `u${c}-${m}`);
    const id = await createGroup(server.origin, users);
    groups.push({
      id,
      users,
      clients: await Promise.all(users.map((u) => login(server.wsUrl, u))),
    });
  }
  const total = conversations * members * perSender;
  const sentAt = new Map<string, number>();
  const underLoad: number[] = [];
  let confirmed = 0;
  let delivered = 0;
  let lastConfirm = 0;
  let lastDelivery = 0;
  const done = Promise.withResolvers<void>();
  for (const group of groups) {
    group.clients.forEach((client, m) => {
      const me = group.users[m];
      client.socket.addEventListener("message", (e) => {
        const f = JSON.parse(e.data as string) as Frame;
        if (f.type !== "msg") return;
        const now = performance.now();
        if (f.from === me) {
          confirmed++;
          lastConfirm = now;
        } else {
          delivered++;
          lastDelivery = now;
          const at = sentAt.get(f.client_id);
          if (at !== undefined) underLoad.push(now - at);
        }
        if (confirmed === total && delivered === total * (members - 1)) done.resolve();
      });
    });
  }
  const started = performance.now();
  for (let n = 0; n < perSender; n++) {
    for (const group of groups) {
      group.clients.forEach((client, m) => {
        const clientId = `${group.users[m]}-${n}`;
        sentAt.set(clientId, performance.now());
        client.send({
          type: "msg.send",
          conversation: group.id,
          text: `m${n}`,
          client_id: clientId,
        });
      });
    }
  }
  const timeout = setTimeout(
    () => done.reject(new Error("Burst did not finish in 120 s")),
    120_000,
  );
  await done.promise;
  clearTimeout(timeout);
  const durableS = (lastConfirm - started) / 1000;
  const deliveredS = (lastDelivery - started) / 1000;

  // Steady load: `rate` messages/s, round-robin over conversations and senders.
  const steady: number[] = [];
  const steadyAt = new Map<string, number>();
  for (const group of groups) {
    group.clients.forEach((client, m) => {
      const me = group.users[m];
      client.socket.addEventListener("message", (e) => {
        const f = JSON.parse(e.data as string) as Frame;
        if (f.type !== "msg" || f.from === me) return;
        const at = steadyAt.get(f.client_id);
        if (at !== undefined) steady.push(performance.now() - at);
      });
    });
  }
  const tickMs = 10;
  const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
  let next = 0;
  const steadyStart = performance.now();
  while (performance.now() - steadyStart < 5000) {
    const tick = performance.now();
    for (let k = 0; k < perTick; k++, next++) {
      const group = groups[next % groups.length];
      const m = Math.floor(next / groups.length) % members;
      const clientId = `steady-${next}`;
      steadyAt.set(clientId, performance.now());
      group.clients[m].send({
        type: "msg.send",
        conversation: group.id,
        text: "s",
        client_id: clientId,
      });
    }
    await new Promise((r) => setTimeout(r, Math.max(0, tickMs - (performance.now() - tick))));
  }
  const expected = next * (members - 1);
  const steadyEnd = Date.now() + 10_000;
  while (steady.length < expected && Date.now() < steadyEnd) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const steadySent = next;
  for (const group of groups) for (const client of group.clients) await client.close();

  console.log(JSON.stringify(
    {
      kv: "file (SQLite)",
      conversations,
      members,
      messages: total,
      durable_messages_per_s: Math.round(total / durableS),
      deliveries_per_s: Math.round((total * (members - 1)) / deliveredS),
      burst_ms: Math.round(durableS * 1000),
      latency_at_rest: summary(atRest),
      latency_under_burst: summary(underLoad),
      steady_rate_per_s: Math.round(steadySent / 5),
      latency_steady: summary(steady),
    },
    null,
    2,
  ));
} finally {
  await server.kill("SIGTERM");
  await Deno.remove(dir, { recursive: true });
}
