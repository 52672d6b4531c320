/** Reading JSON request bodies with clear errors for every way they can be wrong. */

import type { Context } from "hono";
import { AppError } from "./errors.ts";
import { jsonDepth } from "./validate.ts";

// Stateless between calls (no `stream` option): one decoder serves every request.
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** Deepest nesting of arrays and objects {@linkcode readJson} accepts by default. */
export const MAX_JSON_DEPTH = 32;
/**
 * How long a request's body may take to arrive, from the handler's first read: a client
 * that stops sending (or sends a byte now and then) holds a socket and a handler no longer.
 */
export const BODY_TIMEOUT_MS = 30_000;

/**
 * Reads a JSON body: 415 unless the content type is JSON, 413 over `maxBytes`,
 * 400 `invalid_json` when it does not parse or nests deeper than `maxDepth`, 408
 * `request_timeout` when it has not all arrived within `timeoutMs`.
 */
export async function readJson(
  c: Context,
  maxBytes: number,
  maxDepth = MAX_JSON_DEPTH,
  timeoutMs = BODY_TIMEOUT_MS,
): Promise<unknown> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/(?:[\w.+-]+\+)?json\b/i.test(type)) {
    throw new AppError(
      "unsupported_media_type",
      `Expected content type "application/json", got "${type.slice(0, 100)}"`,
    );
  }
  const declared = Number(c.req.header("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new AppError("payload_too_large", `Body larger than ${maxBytes} bytes`);
  }
  // A declared length is what the server reads (HTTP framing): the body is taken whole, in
  // one step of the runtime. Without one (chunked), it is counted as it arrives.
  const late = new AbortController();
  const bytes = await inTime(
    Number.isFinite(declared)
      ? readDeclared(c.req.raw)
      : readBytes(c.req.raw, maxBytes, late.signal),
    late,
    timeoutMs,
  );
  if (bytes.byteLength > maxBytes) {
    throw new AppError("payload_too_large", `Body larger than ${maxBytes} bytes`);
  }
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new AppError("invalid_json", "Body is not valid UTF-8");
  }
  if (jsonDepth(text, maxDepth) > maxDepth) {
    throw new AppError("invalid_json", `Body nests deeper than ${maxDepth} levels`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AppError("invalid_json", `Body is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * The body being read, or a 408 `request_timeout` once `timeoutMs` has passed: `late` is
 * then aborted (a chunked read cancels its stream), and the answer goes out without waiting
 * for the rest of a client that stopped sending; the runtime closes that connection.
 */
async function inTime(
  reading: Promise<Uint8Array>,
  late: AbortController,
  timeoutMs: number,
): Promise<Uint8Array> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // The read left pending settles once its stream is cancelled or its connection goes.
      reading.catch(() => {});
      late.abort();
      reject(new AppError("request_timeout", `Body not received within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([reading, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads a body of a declared length whole: one that ends before its `Content-Length` (the
 * client stopped sending) is a 400 `invalid_request`, as in {@linkcode readBytes}.
 */
async function readDeclared(request: Request): Promise<Uint8Array> {
  try {
    return new Uint8Array(await request.arrayBuffer());
  } catch (e) {
    throw new AppError("invalid_request", "Body could not be read", { cause: e });
  }
}

/**
 * Reads a request's body, counting bytes as they arrive: past `maxBytes` the stream is
 * cancelled and a 413 `payload_too_large` thrown, so a body without `Content-Length`
 * (chunked) never sits whole in memory before it is refused. `signal` cancels the stream
 * (the read then ends in a 400, unless its caller answered already).
 */
export async function readBytes(
  request: Request,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const body = request.body;
  if (!body) return new Uint8Array();
  const reader = body.getReader();
  signal?.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (e) {
      throw new AppError("invalid_request", "Body could not be read", { cause: e });
    }
    if (chunk.done) break;
    total += chunk.value.byteLength;
    if (total > maxBytes) {
      // Not awaited: the answer must not wait on a client that keeps sending.
      reader.cancel().catch(() => {});
      throw new AppError("payload_too_large", `Body larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk.value);
  }
  if (chunks.length === 1) return chunks[0];
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
