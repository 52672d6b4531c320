/** A whole relais on a random loopback port, on in-memory or file KV, for end-to-end tests. */

import { upgradeWebSocket } from "../../src/deno/upgrade.ts";
import { createAdapters } from "../../src/app/adapters.ts";
import { type AppDeps, createApp, type Relais } from "../../src/app/app.ts";
import { loadConfig } from "../../src/config.ts";
import type { Envelope } from "../../src/schemas/envelope.ts";
import { connect, type TestClient } from "./ws_client.ts";

export { eventually } from "./eventually.ts";

/** The service key every test server accepts (all scopes). */
export const SERVICE_KEY = "test_service_key_0123456789abcdef";
/** A key with only the publish scope. */
export const PUBLISH_KEY = "test_publish_key_0123456789abcdef";
/** The JWT secret of test servers. */
export const JWT_SECRET = "test-jwt-secret-0123456789-abcdefghijkl";

/** The environment test servers start with; entries can be overridden. */
export function testEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    RELAIS_ENV: "development",
    RELAIS_KV_PATH: ":memory:",
    RELAIS_JWT_SECRET: JWT_SECRET,
    RELAIS_SERVICE_KEYS:
      `test:${SERVICE_KEY}:events:publish+directory:write+conversations:write+privacy+admin,pub:${PUBLISH_KEY}:events:publish`,
    RELAIS_LOG_LEVEL: "error",
    // With a shared REDIS_URL (CI), each server counts its rate limits apart.
    RELAIS_REDIS_PREFIX: `test-${crypto.randomUUID()}`,
    ...overrides,
  };
}

/** A running test server with helpers. */
export interface TestServer {
  origin: string;
  wsUrl: string;
  relais: Relais;
  token(user: string, options?: { ttlSeconds?: number }): Promise<string>;
  /** Posts an envelope with the service key; returns status and body. */
  publish(
    envelope: unknown,
    key?: string,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  /** GET/POST with a bearer credential. */
  request(
    path: string,
    init?: { method?: string; bearer?: string; apiKey?: string; body?: unknown },
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Connects a WebSocket and completes the hello; returns the client and its welcome. */
  login(
    user: string,
    hello?: Record<string, unknown>,
  ): Promise<{ client: TestClient; welcome: Record<string, unknown> }>;
  close(): Promise<void>;
}

/**
 * Starts relais on `127.0.0.1:0` with {@linkcode testEnv} plus `env`; `adapt` may change
 * the adapters it is built from (e.g. wrap one to make it fail).
 */
export async function startServer(
  env: Record<string, string> = {},
  options: { adapt?(deps: AppDeps): AppDeps } = {},
): Promise<TestServer> {
  const config = loadConfig(testEnv(env));
  // Every store lives in Redis in cluster mode: no Deno KV database to open then.
  const kv = config.store === "kv" ? await Deno.openKv(config.kvPath) : undefined;
  const deps: AppDeps = { config, upgradeWebSocket, ...createAdapters(config, kv) };
  const relais = createApp(options.adapt ? options.adapt(deps) : deps);
  await relais.start();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    relais.app.fetch,
  );
  const origin = `http://127.0.0.1:${server.addr.port}`;
  const clients: TestClient[] = [];

  async function request(
    path: string,
    init: { method?: string; bearer?: string; apiKey?: string; body?: unknown } = {},
  ) {
    const headers: Record<string, string> = {};
    if (init.bearer) headers.authorization = `Bearer ${init.bearer}`;
    if (init.apiKey) headers["x-api-key"] = init.apiKey;
    if (init.body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${origin}${path}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : {} };
  }

  const token = (user: string, options: { ttlSeconds?: number } = {}) =>
    relais.auth.signDevToken(user, { ttlSeconds: options.ttlSeconds ?? 3600 });

  return {
    origin,
    wsUrl: `ws://127.0.0.1:${server.addr.port}/v1/ws`,
    relais,
    token,
    publish: (envelope, key = SERVICE_KEY) =>
      request("/v1/events", { method: "POST", apiKey: key, body: envelope }),
    request,
    async login(user, hello = {}) {
      const client = await connect(`ws://127.0.0.1:${server.addr.port}/v1/ws`);
      clients.push(client);
      client.send({ type: "hello", token: await token(user), ...hello });
      const welcome = await client.next((f) => f.type === "welcome" || f.type === "error");
      return { client, welcome };
    },
    async close() {
      await Promise.all(clients.map((c) => c.close()));
      const stopped = server.shutdown();
      relais.drain();
      await stopped;
      await relais.close();
      // Closes the database every store was built on (Deno KV, or the Redis one).
      deps.store.close();
    },
  };
}

let counter = 0;

/** A valid envelope for `targets`, with a fresh id; `patch` is merged part by part. */
export function envelope(
  targets: string[],
  patch: {
    metadata?: Partial<Envelope["metadata"]>;
    payload?: Record<string, unknown>;
    routing?: Record<string, unknown>;
  } = {},
): Record<string, unknown> {
  counter++;
  return {
    metadata: {
      id: crypto.randomUUID(),
      type: "NOTIFICATION",
      emitter: "portfolio-api",
      source: "feedback",
      topic: "feedback.requested",
      timestamp: new Date().toISOString(),
      ...patch.metadata,
    },
    payload: patch.payload ??
      {
        fr: { title: `Titre ${counter}`, body: "Corps" },
        en: { title: `Title ${counter}`, body: "Body" },
      },
    routing: { audience: { type: "USER", targets }, ...patch.routing },
  };
}
