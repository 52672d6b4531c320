/**
 * Traces end to end: an in-memory tracer provider stands in for Deno's OTLP exporter, and a
 * real server on loopback publishes events and messages to connected users.
 */

import assert from "node:assert/strict";
import { trace } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { type LogRecord, reset } from "@logtape/logtape";
import { configureLogging } from "../../src/log.ts";
import { envelope, eventually, SERVICE_KEY, startServer } from "../_support/server.ts";

const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(
  new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
);

/** The finished spans of one trace. */
const spansOf = (traceId: string) =>
  exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);

/** The one finished span named `name` that `where` accepts. */
function only(spans: ReadableSpan[], name: string, where = (_: ReadableSpan) => true) {
  const found = spans.filter((s) => s.name === name && where(s));
  assert.equal(found.length, 1, `one "${name}" span, got ${found.length}`);
  return found[0];
}

const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

Deno.test("an event's trace links the request, publish, fan-out batch and both users' sends", async () => {
  exporter.reset();
  const records: LogRecord[] = [];
  await configureLogging("info", (record) => records.push(record));
  const server = await startServer({ RELAIS_TRACES: "on" });
  try {
    const { client: alice } = await server.login("alice");
    const { client: bob } = await server.login("bob");
    const event = envelope(["alice", "bob"]);
    const id = (event.metadata as { id: string }).id;

    const res = await server.publish(event);
    assert.equal(res.status, 202);
    await alice.next((f) => f.type === "event");
    await bob.next((f) => f.type === "event");

    const root = await eventually(
      () =>
        exporter.getFinishedSpans().find((s) =>
          s.name === "POST /v1/events" && s.attributes["relais.event.id"] === id
        ),
      3000,
      "the request's span",
    );
    const traceId = root.spanContext().traceId;
    const spans = await eventually(
      () => {
        const spans = spansOf(traceId);
        return spans.filter((s) => s.name === "deliver").length === 2 && spans;
      },
      3000,
      "both users' delivery spans",
    );
    assert.equal(parentOf(root), undefined, "the request's span is the root");
    const publish = only(spans, "publish");
    assert.equal(parentOf(publish), root.spanContext().spanId);
    assert.equal(publish.attributes["relais.targeted"], 2);
    const batch = only(spans, "fanout.batch");
    assert.equal(parentOf(batch), publish.spanContext().spanId);
    assert.equal(batch.attributes["relais.items"], 2);
    for (const user of ["alice", "bob"]) {
      const deliver = only(spans, "deliver", (s) => s.attributes["relais.user"] === user);
      assert.equal(parentOf(deliver), batch.spanContext().spanId, `${user}'s delivery`);
      assert.equal(deliver.attributes["relais.sends"], 1);
      assert.deepEqual(deliver.events.map((e) => e.name), ["send"]);
      assert.equal(deliver.events[0].attributes?.["relais.transport"], "ws");
    }

    // The request's log line names the trace.
    const line = await eventually(
      () => records.find((r) => r.message.join("") === "HTTP request" && r.properties.trace_id),
      3000,
      "the request's log line",
    );
    assert.equal(line.properties.trace_id, traceId);
    assert.equal(line.properties.path, "/v1/events");
  } finally {
    await server.close();
    await reset();
  }
});

Deno.test("an ephemeral event's trace reaches each user's send through the stream heads", async () => {
  exporter.reset();
  const server = await startServer({ RELAIS_TRACES: "on" });
  try {
    const { client: alice } = await server.login("alice");
    const { client: bob } = await server.login("bob");
    const res = await server.publish(envelope(["alice", "bob"], {
      metadata: { type: "REALTIME", topic: "activity.updated" },
      payload: { activity: "a1" },
    }));
    assert.equal(res.status, 202);
    await alice.next((f) => f.type === "event");
    await bob.next((f) => f.type === "event");

    const spans = await eventually(
      () => {
        const delivered = exporter.getFinishedSpans().filter((s) => s.name === "deliver");
        return delivered.length === 2 && spansOf(delivered[0].spanContext().traceId);
      },
      3000,
      "both users' delivery spans",
    );
    const root = only(spans, "POST /v1/events");
    const publish = only(spans, "publish");
    const batch = only(spans, "fanout.batch");
    assert.equal(parentOf(publish), root.spanContext().spanId);
    assert.equal(parentOf(batch), publish.spanContext().spanId);
    const users = spans.filter((s) => s.name === "deliver").map((s) => {
      assert.equal(parentOf(s), batch.spanContext().spanId);
      return s.attributes["relais.user"];
    });
    assert.deepEqual(users.sort(), ["alice", "bob"]);
  } finally {
    await server.close();
  }
});

Deno.test("a chat message's trace runs from msg.send through its commit to the other member's send", async () => {
  exporter.reset();
  const server = await startServer({
    RELAIS_TRACES: "on",
    RELAIS_CONVERSATION_POLICY: "any",
  });
  try {
    const created = await server.request("/v1/conversations", {
      apiKey: SERVICE_KEY,
      body: { members: ["alice", "bob"], title: "Relecture" },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const conversation = created.body.id as string;
    const { client: alice } = await server.login("alice");
    const { client: bob } = await server.login("bob");

    alice.send({ type: "msg.send", conversation, text: "Bonjour", client_id: "m1" });
    await bob.next((f) => f.type === "msg" && f.conversation === conversation);

    const send = await eventually(
      () => exporter.getFinishedSpans().find((s) => s.name === "msg.send"),
      3000,
      "the msg.send span",
    );
    assert.equal(parentOf(send), undefined, "msg.send is the root of the message's trace");
    assert.equal(send.attributes["relais.user"], "alice");
    const traceId = send.spanContext().traceId;
    const bobs = await eventually(
      () =>
        spansOf(traceId).find((s) => s.name === "deliver" && s.attributes["relais.user"] === "bob"),
      3000,
      "bob's delivery span",
    );
    const commit = only(spansOf(traceId), "conversation.commit");
    assert.equal(parentOf(commit), send.spanContext().spanId);
    assert.equal(commit.attributes["relais.conversation"], conversation);
    assert.equal(parentOf(bobs), commit.spanContext().spanId);
    assert.equal(bobs.attributes["relais.sends"], 1);
    assert.deepEqual(bobs.events.map((e) => e.name), ["send"]);
  } finally {
    await server.close();
  }
});

Deno.test("with traces off, publishing and chatting record no span", async () => {
  exporter.reset();
  const server = await startServer({ RELAIS_CONVERSATION_POLICY: "any" });
  try {
    const created = await server.request("/v1/conversations", {
      apiKey: SERVICE_KEY,
      body: { members: ["alice", "bob"], title: "Relecture" },
    });
    const conversation = created.body.id as string;
    const { client: alice } = await server.login("alice");
    const { client: bob } = await server.login("bob");
    assert.equal((await server.publish(envelope(["alice", "bob"]))).status, 202);
    alice.send({ type: "msg.send", conversation, text: "Bonjour", client_id: "m1" });
    // Barriers: a traced delivery ends its span before the frame leaves, so once both
    // frames are here every span the path would have made is finished.
    await alice.next((f) => f.type === "event");
    await bob.next((f) => f.type === "event");
    await bob.next((f) => f.type === "msg" && f.conversation === conversation);
    assert.deepEqual(exporter.getFinishedSpans().map((s) => s.name), []);
  } finally {
    await server.close();
  }
});
