/**
 * A node in cluster mode while its Redis is out of reach, and after: publishes are refused
 * with 503 `store_unavailable` and a short `Retry-After` within a bounded time (never a
 * hang, a 500 or a 202), connections are refused clearly, `/readyz` says not ready; once
 * Redis is back on the same port and data, the same node publishes and connects again with
 * no restart, and an event accepted before the outage is still there.
 *
 * Each test runs its own `redis-server` (append-only file, fsync on every write) in a
 * temporary directory, killed (`SIGKILL`: the process is gone) or stopped (`SIGSTOP`: the
 * connection stays open and nothing answers) in the middle.
 */

import assert from "node:assert/strict";
import { REDIS_SERVER } from "../_support/redis.ts";
import { installed, skipUnless } from "../_support/requirements.ts";
import { connect } from "../_support/ws_client.ts";
import { isConnectionFailure } from "../../src/store/redis_kv/unavailable.ts";
import {
  envelope,
  eventually,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";
import { freePort, redisAnswers } from "../../src/cluster/dev/loopback.ts";

// A server of its own to kill and start again: `REDIS_URL` will not do.
const ignore = skipUnless(installed(REDIS_SERVER), {
  tests: "the Redis outage tests",
  missing: `"${REDIS_SERVER}" is not installed`,
  install: "apt-get install -y redis-server",
});
/** The longest a refusal may take: the limiter's and the store's command timeouts, and margin. */
const REFUSED_WITHIN_MS = 6000;
/** The service key's publish limit: far above what the tests publish before they count. */
const EVENTS_PER_MINUTE = 12;

/** A `redis-server` of this test's own, restartable on the same port and directory. */
class OwnRedis {
  readonly port = freePort();
  readonly dir = Deno.makeTempDirSync({ prefix: "relais-outage-" });
  #child: Deno.ChildProcess | undefined;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.#child = new Deno.Command(REDIS_SERVER, {
      args: [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--dir",
        this.dir,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await eventually(() => redisAnswers(this.port), 10_000, `redis-server on port ${this.port}`);
  }

  /** Kills the server at once (what it acknowledged is in its append-only file). */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child) return;
    try {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
  }

  signal(signal: "SIGSTOP" | "SIGCONT"): void {
    this.#child?.kill(signal);
  }

  async dispose(): Promise<void> {
    await this.kill();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** Posts `event` and measures how long the answer took. */
async function timedPublish(server: TestServer, event: Record<string, unknown>) {
  const started = performance.now();
  const res = await fetch(`${server.origin}/v1/events`, {
    method: "POST",
    headers: { "x-api-key": SERVICE_KEY, "content-type": "application/json" },
    body: JSON.stringify(event),
    // A hang fails the test instead of holding it.
    signal: AbortSignal.timeout(REFUSED_WITHIN_MS),
  });
  const body = await res.json();
  return { res, body, ms: performance.now() - started };
}

/** A publish refused for the outage: 503, `Retry-After` of 1 to 5 s, the code, in time. */
async function assertRefused(server: TestServer, event: Record<string, unknown>) {
  const { res, body, ms } = await timedPublish(server, event);
  assert.equal(res.status, 503, `status ${res.status}: ${JSON.stringify(body)}`);
  assert.equal(body.error.code, "store_unavailable");
  assert.equal(typeof body.error.message, "string");
  const retryAfter = Number(res.headers.get("retry-after"));
  assert.ok(retryAfter >= 1 && retryAfter <= 5, `Retry-After "${res.headers.get("retry-after")}"`);
  assert.equal(body.error.retry_after_ms, retryAfter * 1000);
  assert.ok(ms < REFUSED_WITHIN_MS, `refused after ${Math.round(ms)} ms`);
}

/** A WebSocket hello refused for the outage: an error frame with the code, then a close. */
async function assertWsRefused(server: TestServer) {
  const client = await connect(server.wsUrl);
  try {
    client.send({ type: "hello", token: await server.token("camille"), after: 0 });
    const frame = await client.next(() => true, REFUSED_WITHIN_MS);
    assert.equal(frame.type, "error", JSON.stringify(frame));
    assert.equal(frame.code, "store_unavailable");
    assert.ok(frame.retry_after_ms >= 1000 && frame.retry_after_ms <= 5000);
    const { code } = await client.closed;
    assert.equal(code, 1013);
  } finally {
    await client.close();
  }
}

/** SSE and poll attempts refused for the outage: 503 with the code, not a hang or a 500. */
async function assertHttpTransportsRefused(server: TestServer) {
  const bearer = await server.token("camille");
  for (const path of ["/v1/sse", "/v1/poll?after=0&timeout=100"]) {
    const res = await fetch(`${server.origin}${path}`, {
      headers: { authorization: `Bearer ${bearer}` },
      signal: AbortSignal.timeout(REFUSED_WITHIN_MS),
    });
    const text = await res.text();
    assert.equal(res.status, 503, `${path}: ${res.status} ${text.slice(0, 300)}`);
    assert.equal(JSON.parse(text).error.code, "store_unavailable", path);
    assert.ok(Number(res.headers.get("retry-after")) >= 1, path);
  }
}

/** Waits until the node is ready again (its store answers), then checks it works. */
async function assertRecovered(server: TestServer, first: Record<string, unknown>) {
  await eventually(
    async () => (await server.request("/readyz")).status === 200,
    10_000,
    "the node to be ready again",
  );
  const id = (first.metadata as { id: string }).id;
  // The event accepted before the outage is still there.
  const status = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
  assert.equal(status.status, 200, JSON.stringify(status.body));
  assert.deepEqual(status.body.pending_users, ["camille"]);
  // A connection gets in and replays it; a new publish is accepted and delivered live.
  const { client, welcome } = await server.login("camille", { after: 0 });
  assert.equal(welcome.type, "welcome", JSON.stringify(welcome));
  const replayed = await client.next((f) => f.type === "event");
  assert.equal(replayed.envelope.metadata.id, id);
  const next = envelope(["camille"], { routing: { retry: { ack_required: true } } });
  assert.equal((await server.publish(next)).status, 202);
  const live = await client.next((f) => f.type === "event");
  assert.equal(live.envelope.metadata.id, (next.metadata as { id: string }).id);
}

/** The rate limiter (on the same Redis) counts again: the key's limit is reached. */
async function assertLimiterCounts(server: TestServer) {
  for (let i = 0; i <= EVENTS_PER_MINUTE; i++) {
    const { status, body } = await server.publish(envelope(["camille"]));
    if (status === 429) {
      assert.equal((body.error as { code: string }).code, "rate_limited");
      return;
    }
    assert.equal(status, 202, JSON.stringify(body));
  }
  assert.fail(`no 429 after ${EVENTS_PER_MINUTE + 1} publishes`);
}

async function withOutage(
  outage: (redis: OwnRedis) => Promise<void>,
  recover: (redis: OwnRedis) => Promise<void>,
  options: { refusedNeverWritten: boolean },
) {
  const redis = new OwnRedis();
  let server: TestServer | undefined;
  try {
    await redis.start();
    server = await startServer({
      RELAIS_CLUSTER: "redis",
      REDIS_URL: redis.url,
      RELAIS_REDIS_PREFIX: `outage-${crypto.randomUUID()}`,
      RELAIS_RATE_EVENTS: `${EVENTS_PER_MINUTE}/1m`,
    });
    const first = envelope(["camille"], { routing: { retry: { ack_required: true } } });
    assert.equal((await server.publish(first)).status, 202);

    await outage(redis);
    const refused = envelope(["camille"]);
    await assertRefused(server, refused);
    // A second one is refused alike: the first refusal left nothing stuck.
    await assertRefused(server, envelope(["camille"]));
    const ready = await server.request("/readyz");
    assert.equal(ready.status, 503);
    assert.match((ready.body.error as { message: string }).message, /store is unavailable/);
    await assertWsRefused(server);
    await assertHttpTransportsRefused(server);

    await recover(redis);
    await assertRecovered(server, first);
    if (options.refusedNeverWritten) {
      // Refused before anything reached Redis: not there, and never delivered.
      const id = (refused.metadata as { id: string }).id;
      assert.equal((await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY })).status, 404);
    }
    await assertLimiterCounts(server);
  } finally {
    // Redis answers again before the node closes, so that its closing does not wait.
    redis.signal("SIGCONT");
    await server?.close();
    await redis.dispose();
  }
}

Deno.test({
  name: "redis killed: publishes get 503 store_unavailable, and the node recovers by itself",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withOutage((redis) => redis.kill(), (redis) => redis.start(), {
      refusedNeverWritten: true,
    });
  },
});

Deno.test({
  name: "redis stopped (not answering): publishes get 503 in bounded time, then recover",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withOutage(
      (redis) => Promise.resolve(redis.signal("SIGSTOP")),
      (redis) => Promise.resolve(redis.signal("SIGCONT")),
      // A command written before it timed out runs once Redis answers again.
      { refusedNeverWritten: false },
    );
  },
});

Deno.test("a lost connection is told apart from a command Redis refused", () => {
  const named = (name: string, message: string) => Object.assign(new Error(message), { name });
  for (
    const error of [
      new Error("Connection is closed."),
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      new Error("Command timed out"),
      named("MaxRetriesPerRequestError", "Reached the max retries per request limit (which is 0)"),
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }),
      named("ReplyError", "LOADING Redis is loading the dataset in memory"),
      named("ReplyError", "MISCONF Errors writing to the AOF file"),
    ]
  ) assert.ok(isConnectionFailure(error), error.message);
  for (
    const error of [
      named("ReplyError", "NOSCRIPT No matching script"),
      named("ReplyError", "ERR wrong number of arguments"),
      named("AbortError", "The signal has been aborted"),
      new TypeError("Value too large (max 65536 bytes)"),
      "Connection is closed.",
    ]
  ) assert.ok(!isConnectionFailure(error), String(error));
});
