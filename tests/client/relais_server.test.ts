/** The SDK in Deno against a real relais on loopback: every transport, resume, fallback. */

import assert from "node:assert/strict";
import { createRelais, type RelaisClient, type RelaisOptions } from "../../src/client/relais.ts";
import type { EventFrame, TransportKind } from "../../src/client/types.ts";
import {
  envelope,
  eventually,
  SERVICE_KEY,
  startServer,
  type TestServer,
} from "../_support/server.ts";
import { heldTimers } from "./_timers.ts";

function sdk(server: TestServer, user: string, options: Partial<RelaisOptions> = {}) {
  const events: EventFrame[] = [];
  const relais = createRelais({
    url: server.origin,
    token: () => server.token(user),
    watchBrowser: false,
    backoff: { baseMs: 20, maxMs: 200 },
    pollTimeoutMs: 1000,
    ...options,
  });
  relais.on("event", (e) => events.push(e));
  return { relais, events };
}

async function opened(relais: RelaisClient, transport?: TransportKind) {
  await eventually(
    () => relais.state === "open" && (!transport || relais.transport === transport),
    8000,
    `open on ${transport ?? "any transport"} (now ${relais.state} on ${relais.transport})`,
  );
}

for (const kind of ["ws", "sse", "poll"] as const) {
  Deno.test(`the SDK receives and acks over ${kind} from a real server`, async () => {
    const server = await startServer();
    const { relais, events } = sdk(server, "camille", { transports: [kind] });
    try {
      relais.connect();
      await opened(relais, kind);
      const e = envelope(["camille"], { routing: { retry: { ack_required: true } } });
      const id = (e.metadata as { id: string }).id;
      await server.publish(e);
      await eventually(() => events.length === 1, 5000, "the event");
      assert.equal(events[0].envelope.metadata.id, id);
      assert.equal(relais.position, 1);
      await relais.ack(id);
      await eventually(
        async () => {
          const res = await server.request(`/v1/events/${id}`, { apiKey: SERVICE_KEY });
          return res.body.acked === 1;
        },
        3000,
        "the ack",
      );
    } finally {
      relais.close();
      await server.close();
    }
  });
}

for (const kind of ["ws", "sse", "poll"] as const) {
  Deno.test(`the SDK on ${kind} resumes after a dropped connection with no loss and no duplicate`, async () => {
    const server = await startServer();
    const { relais, events } = sdk(server, "yanis", { transports: [kind] });
    try {
      relais.connect();
      await opened(relais, kind);
      await server.publish(envelope(["yanis"]));
      await eventually(() => events.length === 1, 5000, "the first event");
      // The server drops the connection; items published meanwhile must arrive on resume.
      for (const conn of server.relais.hub.ofUser("yanis")) conn.outlet.close(1011, "test drop");
      for (let i = 0; i < 5; i++) await server.publish(envelope(["yanis"]));
      await eventually(() => events.length === 6, 8000, "six events");
      // Barrier: a duplicate from the resume would come before an item published after it.
      await server.publish(envelope(["yanis"]));
      await eventually(() => events.some((e) => e.seq === 7), 5000, "the barrier event");
      assert.deepEqual(events.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7]);
      assert.equal(new Set(events.map((e) => e.envelope.metadata.id)).size, 7);
    } finally {
      relais.close();
      await server.close();
    }
  });
}

/** Runtime constructors and a fetch that record what the SDK sends: hellos and URLs. */
function recording() {
  const hellos: Record<string, unknown>[] = [];
  const urls: URL[] = [];
  class RecordingWebSocket extends WebSocket {
    override send(data: Parameters<WebSocket["send"]>[0]) {
      if (typeof data === "string" && JSON.parse(data).type === "hello") {
        hellos.push(JSON.parse(data));
      }
      super.send(data);
    }
  }
  class RecordingEventSource extends EventSource {
    constructor(url: string | URL) {
      urls.push(new URL(url));
      super(url);
    }
  }
  const recordingFetch: typeof fetch = (input, init) => {
    urls.push(new URL(input instanceof Request ? input.url : input));
    return fetch(input, init);
  };
  return {
    hellos,
    urls,
    runtime: {
      WebSocket: RecordingWebSocket,
      EventSource: RecordingEventSource,
      fetch: recordingFetch,
    },
  };
}

for (const kind of ["ws", "sse", "poll"] as const) {
  Deno.test(`the SDK on ${kind} sends the welcome's epoch back with its position when it resumes`, async () => {
    const server = await startServer();
    const recorded = recording();
    const { relais, events } = sdk(server, "lucas", { transports: [kind], ...recorded.runtime });
    try {
      relais.connect();
      await opened(relais, kind);
      const epoch = server.relais.sessions.epochOf("lucas");
      assert.equal(relais.epoch, epoch);
      await server.publish(envelope(["lucas"]));
      await eventually(() => events.length === 1, 5000, "the event");
      const session = relais.session;
      const hellos = recorded.hellos.length;
      const urls = recorded.urls.length;
      for (const conn of server.relais.hub.ofUser("lucas")) conn.outlet.close(1011, "test drop");
      await eventually(
        () => relais.state === "open" && relais.session !== session,
        8000,
        "the resumed connection",
      );
      let resume: { after?: unknown; epoch?: unknown };
      if (kind === "ws") resume = recorded.hellos[hellos] ?? {};
      else {
        const url = recorded.urls.slice(urls).find((u) => u.pathname === `/v1/${kind}`);
        resume = Object.fromEntries(url?.searchParams ?? []);
      }
      assert.deepEqual([resume.after, resume.epoch], [kind === "ws" ? 1 : "1", epoch]);
    } finally {
      relais.close();
      await server.close();
    }
  });
}

Deno.test("the SDK falls back to SSE when WebSockets fail, and to polling when SSE fails too", async () => {
  const server = await startServer();
  // A "network" where the WebSocket endpoint is unreachable and event streams break.
  class BlockedWebSocket extends WebSocket {
    constructor(_url: string | URL, protocols?: string | string[]) {
      super("ws://127.0.0.1:9/blocked", protocols);
    }
  }
  const sseOnly = sdk(server, "emma", { WebSocket: BlockedWebSocket });
  class BlockedEventSource extends EventSource {
    constructor(_url: string | URL) {
      super("http://127.0.0.1:9/blocked");
    }
  }
  const pollOnly = sdk(server, "emma", {
    WebSocket: BlockedWebSocket,
    EventSource: BlockedEventSource,
  });
  try {
    sseOnly.relais.connect();
    pollOnly.relais.connect();
    await opened(sseOnly.relais, "sse");
    await opened(pollOnly.relais, "poll");
    await server.publish(envelope(["emma"]));
    await eventually(() => sseOnly.events.length === 1, 5000, "the event over SSE");
    await eventually(() => pollOnly.events.length === 1, 5000, "the event over polling");
  } finally {
    sseOnly.relais.close();
    pollOnly.relais.close();
    await server.close();
  }
});

Deno.test("the SDK reconnects after an idle close only when told the user is active", async () => {
  const server = await startServer({ RELAIS_IDLE_TIMEOUT_MS: "300", RELAIS_HEARTBEAT_MS: "100" });
  // Held timers: the SDK's own never fire, so only the server's idle close ends the socket.
  const timers = heldTimers();
  const { relais, events } = sdk(server, "camille", { transports: ["ws"], timers });
  try {
    relais.connect();
    await opened(relais);
    await eventually(() => relais.state === "dormant", 3000, "dormant");
    await server.publish(envelope(["camille"]));
    // Only a timer could reconnect by itself, and none is left.
    assert.deepEqual(timers.pending(), [], "nothing scheduled while dormant");
    assert.equal(relais.state, "dormant");
    assert.equal(events.length, 0);
    relais.activity();
    await eventually(() => events.length === 1, 5000, "the missed event");
  } finally {
    relais.close();
    await server.close();
  }
});
