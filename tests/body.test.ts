/** Request bodies are counted while they arrive and refused at the cap, not after. */

import assert from "node:assert/strict";
import { Hono } from "hono";
import * as v from "valibot";
import { jsonBody } from "../routes/_json_body.ts";
import { errorHandler } from "../src/errors.ts";
import { SERVICE_KEY, startServer } from "./_support/server.ts";

const CAP = 262_144;
const CHUNK = 65_536;

/** A chunked body of `total` bytes that counts how much the consumer pulled. */
function countingBody(total: number) {
  let pulled = 0;
  const chunk = new Uint8Array(CHUNK).fill(0x20);
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled >= total) return controller.close();
      pulled += chunk.byteLength;
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  return { stream, pulled: () => pulled };
}

Deno.test("a chunked body over the cap is refused with 413 before it is read whole", async () => {
  const server = await startServer({ RELAIS_MAX_BODY_BYTES: String(CAP) });
  try {
    // 256 times the cap: far more than loopback socket buffers can hold.
    const total = CAP * 256;
    const body = countingBody(total);
    const res = await fetch(`${server.origin}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": SERVICE_KEY },
      body: body.stream,
    });
    const answer = await res.json();
    const pulledAtAnswer = body.pulled();
    assert.equal(res.status, 413);
    assert.equal(answer.error.code, "payload_too_large");
    assert.ok(
      pulledAtAnswer < total / 4,
      `Sent ${pulledAtAnswer} of ${total} bytes before the answer`,
    );
  } finally {
    await server.close();
  }
});

Deno.test("a chunked body under the cap is read and parsed", async () => {
  const server = await startServer({ RELAIS_MAX_BODY_BYTES: String(CAP) });
  try {
    const json = new TextEncoder().encode("[1, 2, 3]");
    const res = await fetch(`${server.origin}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": SERVICE_KEY },
      body: new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(json.subarray(0, 4));
          controller.enqueue(json.subarray(4));
          controller.close();
        },
      }),
    });
    const answer = await res.json();
    // The body arrived whole and parsed: only the envelope's shape is refused.
    assert.equal(res.status, 400);
    assert.equal(answer.error.code, "validation_failed");
  } finally {
    await server.close();
  }
});

/** Everything the server answers on a raw connection, read until it closes. */
async function readAll(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(4096);
  let text = "";
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) return text + decoder.decode();
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
}

Deno.test("a body shorter than its Content-Length is a 400, not a 500", async () => {
  const server = await startServer();
  try {
    const body = '{"enabled":'; // 11 bytes of the 1,000 announced
    const head = [
      "PUT /v1/me/preferences HTTP/1.1",
      `Host: ${new URL(server.origin).host}`,
      `Authorization: Bearer ${await server.token("ana")}`,
      "Content-Type: application/json",
      "Content-Length: 1000",
      "",
      "",
    ].join("\r\n");
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: Number(new URL(server.origin).port),
    });
    try {
      await conn.write(new TextEncoder().encode(head + body));
      // The client stops sending: the server is left with a body it cannot finish.
      await conn.closeWrite();
      const answer = await readAll(conn);

      assert.match(answer, /^HTTP\/1\.1 400 /, answer.slice(0, 200));
      const json = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
      assert.equal(json.error.code, "invalid_request");
    } finally {
      conn.close();
    }
  } finally {
    await server.close();
  }
});

/** The first whole response on a raw connection (headers, then its declared body). */
async function readResponse(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(4096);
  let text = "";
  for (;;) {
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const length = Number(/content-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
      if (new TextEncoder().encode(text.slice(end + 4)).byteLength >= length) return text;
    }
    const n = await conn.read(buffer);
    if (n === null) return text + decoder.decode();
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
}

/** A route reading a JSON body with a short deadline, served on loopback. */
function slowBodyServer(timeoutMs: number) {
  const app = new Hono()
    .put(
      "/v1/thing",
      jsonBody(v.object({ enabled: v.boolean() }), { maxBytes: 1024, what: "thing", timeoutMs }),
      (c) => c.json({ ok: true }),
    );
  app.onError(errorHandler(() => {}));
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
}

for (
  const [framing, head, part] of [
    ["a declared length", "Content-Length: 1000", '{"enabled":'],
    ["chunked", "Transfer-Encoding: chunked", 'b\r\n{"enabled":\r\n'],
  ] as const
) {
  Deno.test(`a body (${framing}) that stops arriving is answered 408 at its deadline, not held`, async () => {
    const server = slowBodyServer(300);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    try {
      const request = [
        "PUT /v1/thing HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        head,
        "",
        "",
      ].join("\r\n");
      // The client sends part of its body and then nothing, keeping the connection open.
      await conn.write(new TextEncoder().encode(request + part));
      const started = performance.now();
      // Bounded, so that a server that never answers fails the test instead of hanging it.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const answer = await Promise.race([
        readResponse(conn),
        new Promise<string>((resolve) => timer = setTimeout(() => resolve("(no answer)"), 5_000)),
      ]).finally(() => clearTimeout(timer));
      assert.match(answer, /^HTTP\/1\.1 408 /, answer.slice(0, 200));
      // At the deadline (300 ms), not when the client gives up.
      assert.ok(performance.now() - started < 3_000, "answered at its deadline");
      const json = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
      assert.equal(json.error.code, "request_timeout");
    } finally {
      try {
        conn.close();
      } catch { /* closed already */ }
      await server.shutdown();
    }
  });
}
