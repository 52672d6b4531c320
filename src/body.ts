/** Reading JSON request bodies with clear errors for every way they can be wrong. */

import type { Context } from "hono";
import { AppError } from "./errors.ts";
import { jsonDepth } from "./validate.ts";

/** Deepest nesting of arrays and objects {@linkcode readJson} accepts by default. */
export const MAX_JSON_DEPTH = 32;

/**
 * Reads a JSON body: 415 unless the content type is JSON, 413 over `maxBytes`,
 * 400 `invalid_json` when it does not parse or nests deeper than `maxDepth`.
 */
export async function readJson(
  c: Context,
  maxBytes: number,
  maxDepth = MAX_JSON_DEPTH,
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
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.byteLength > maxBytes) {
    throw new AppError("payload_too_large", `Body larger than ${maxBytes} bytes`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
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
