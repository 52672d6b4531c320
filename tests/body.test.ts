/** Request bodies are counted while they arrive and refused at the cap, not after. */

import assert from "node:assert/strict";
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
