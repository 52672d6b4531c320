/** A route's JSON body: read under the body cap, then validated and described. */

import type { Context } from "hono";
import { uniqueSymbol } from "hono-openapi";
import type * as v from "valibot";
import { readJson } from "../src/body.ts";
import { AppError } from "../src/errors.ts";
import { plainObject } from "../src/schemas/plain_object.ts";
import { validate } from "../src/validate.ts";

/** Options of {@linkcode jsonBody}. */
export interface JsonBodyOptions {
  /** Larger bodies are refused (413) while they arrive. */
  maxBytes: number;
  /** Deepest nesting of arrays and objects accepted (default 32). */
  maxDepth?: number;
  /** How the message of a validation error names the body: `Invalid <what>: …`. */
  what: string;
  /** An absent body (`Content-Length: 0`, or neither a length nor a type) reads as `{}`. */
  optional?: boolean;
  /** How long the body may take to arrive (default `BODY_TIMEOUT_MS`, 30 s): then 408. */
  timeoutMs?: number;
}

// The media types Hono's validator parses; for any other it would validate `{}`.
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

/**
 * The validator middleware of a route's JSON body (`c.req.valid("json")`), which first
 * reads the body as `src/body.ts` does: 415 unless it is JSON, 413 past `maxBytes` (counted
 * as it streams in), 400 `invalid_json` when it does not parse or nests too deep. Only then
 * is it validated, with the same 400 `validation_failed` as every other input. Every body
 * is a JSON object: an array is refused at the root (path `$`), where valibot's object
 * schemas would read it as an object.
 */
export function jsonBody<S extends v.GenericSchema>(schema: S, options: JsonBodyOptions) {
  const check = validate("json", plainObject(schema), { what: options.what });
  const middleware: typeof check = async (c, next) => {
    const body = await read(c, options);
    // The validator asks `c.req.json()`, which would read the (consumed) stream again.
    c.req.json = <T>() => Promise.resolve(body as T);
    return await check(c, next);
  };
  // The document finds the schema on the middleware the route mounts.
  const described = (check as unknown as Record<symbol, unknown>)[uniqueSymbol];
  return Object.assign(middleware, { [uniqueSymbol]: described });
}

async function read(c: Context, options: JsonBodyOptions): Promise<unknown> {
  const length = c.req.header("content-length");
  const type = c.req.header("content-type");
  if (options.optional && (length === "0" || (length === undefined && type === undefined))) {
    return {};
  }
  if (type !== undefined && !JSON_MEDIA_TYPE.test(type.split(";")[0].trim())) {
    throw new AppError(
      "unsupported_media_type",
      `Expected content type "application/json", got "${type.slice(0, 100)}"`,
    );
  }
  return await readJson(c, options.maxBytes, options.maxDepth, options.timeoutMs);
}
