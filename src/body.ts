/** Reading JSON request bodies with clear errors for every way they can be wrong. */

import type { Context } from "hono";
import { AppError } from "./errors.ts";

/**
 * Reads a JSON body: 415 unless the content type is JSON, 413 over `maxBytes`,
 * 400 `invalid_json` when it does not parse.
 */
export async function readJson(c: Context, maxBytes: number): Promise<unknown> {
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
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AppError("invalid_json", `Body is not valid JSON: ${(e as Error).message}`);
  }
}
