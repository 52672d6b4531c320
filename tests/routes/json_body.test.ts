import assert from "node:assert/strict";
import { Hono } from "hono";
import * as v from "valibot";
import { jsonBody } from "../../routes/_json_body.ts";
import { AppError, errorBody } from "../../src/errors.ts";
import { queryInt, validate } from "../../src/validate.ts";

const NoteSchema = v.strictObject({
  text: v.pipe(v.string(), v.trim(), v.minLength(1)),
  tags: v.optional(v.array(v.string()), []),
});

let handled = 0;
const app = new Hono()
  .post(
    "/notes/:id",
    validate("param", v.object({ id: queryInt(1, 99) }), { what: "note id" }),
    validate("query", v.object({ limit: v.optional(queryInt(1, 10), "5") })),
    jsonBody(NoteSchema, { maxBytes: 64, maxDepth: 3, what: "note" }),
    (c) => {
      handled++;
      return c.json({
        id: c.req.valid("param").id,
        ...c.req.valid("json"),
        ...c.req.valid("query"),
      });
    },
  )
  .post(
    "/read",
    jsonBody(v.strictObject({ seq: v.optional(v.number()) }), {
      maxBytes: 64,
      what: "read",
      optional: true,
    }),
    (c) => c.json(c.req.valid("json")),
  )
  .get(
    "/stream",
    validate("header", v.object({ "last-event-id": v.optional(v.pipe(v.string(), v.digits())) }), {
      fields: { "last-event-id": "Last-Event-ID" },
    }),
    (c) => c.json({ last: c.req.valid("header")["last-event-id"] ?? null }),
  );
app.onError((error, c) => {
  if (error instanceof AppError) return c.json(errorBody(error), error.status);
  return c.json({ unexpected: String(error) }, 500);
});

function post(path: string, body: BodyInit | null, type: string | null = "application/json") {
  return app.request(path, {
    method: "POST",
    headers: type === null ? {} : { "content-type": type },
    body,
  });
}

async function errorOf(res: Response) {
  return (await res.json()).error as { code: string; message: string; details?: unknown };
}

Deno.test("a validated route hands the handler the parsed, transformed input", async () => {
  const res = await post("/notes/7?limit=2", JSON.stringify({ text: "  hi  " }));

  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { id: 7, text: "hi", tags: [], limit: 2 });
});

Deno.test("a bad body, query or path parameter is a 400 naming every field", async () => {
  const before = handled;
  const body = await post("/notes/7", JSON.stringify({ text: "", tags: [1], extra: true }));
  const query = await post("/notes/7?limit=99", JSON.stringify({ text: "a" }));
  const param = await post("/notes/x", JSON.stringify({ text: "a" }));

  assert.equal(body.status, 400);
  const bodyError = await errorOf(body);
  assert.equal(bodyError.code, "validation_failed");
  assert.match(bodyError.message, /^Invalid note: "text": /);
  assert.deepEqual(
    (bodyError.details as { path: string }[]).map((d) => d.path),
    ["text", "tags.0", "extra"],
  );
  assert.equal(query.status, 400);
  const queryError = await errorOf(query);
  assert.match(queryError.message, /^Invalid query: "limit": /);
  assert.deepEqual(queryError.details, [{
    path: "limit",
    message: "Invalid value: Expected <=10 but received 99",
  }]);
  assert.equal(param.status, 400);
  assert.match((await errorOf(param)).message, /^Invalid note id: "id": expected a whole number$/);
  assert.equal(handled, before);
});

Deno.test("a body that is not a JSON object names the root as $", async () => {
  const res = await post("/notes/7", "42");

  assert.equal(res.status, 400);
  assert.deepEqual((await errorOf(res)).details, [
    { path: "$", message: "Invalid type: Expected Object but received 42" },
  ]);
});

Deno.test("a body that is an array is refused at the root, not read as an object", async () => {
  const before = handled;
  // Every field of the /read body is optional: `[]` would pass as `{}`.
  const empty = await post("/read", "[]");
  const listed = await post("/notes/7", '["a"]');

  for (const res of [empty, listed]) {
    assert.equal(res.status, 400);
    const error = await errorOf(res);
    assert.equal(error.code, "validation_failed");
    assert.deepEqual(error.details, [
      { path: "$", message: "Invalid type: Expected Object but received Array" },
    ]);
  }
  assert.match((await errorOf(await post("/read", "[]"))).message, /^Invalid read: "\$": /);
  assert.equal(handled, before);
});

Deno.test("a body is read under its cap before it is validated", async () => {
  const before = handled;
  // No Content-Length: the body streams in and is refused once past the cap.
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      if (pulled > 1000) return controller.close();
      controller.enqueue(new TextEncoder().encode(pulled === 1 ? '{"text": "' : "x".repeat(32)));
    },
  });
  const streamed = await app.request("/notes/7", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: stream,
    duplex: "half",
  } as RequestInit);
  const declared = await post("/notes/7", JSON.stringify({ text: "x".repeat(100) }));

  assert.equal(streamed.status, 413);
  assert.equal((await errorOf(streamed)).code, "payload_too_large");
  assert(pulled < 10, `read ${pulled} chunks`);
  assert.equal(declared.status, 413);
  assert.equal(handled, before);
});

Deno.test("a body that is not JSON is refused before validation with the body errors", async () => {
  const cases: [BodyInit, string | null, number, string][] = [
    ['{"text": "a"}', "text/plain", 415, "unsupported_media_type"],
    ['{"text": "a"}', "application/json-seq", 415, "unsupported_media_type"],
    ['{"text": "a"}', null, 415, "unsupported_media_type"],
    ['{"text": ', "application/json", 400, "invalid_json"],
    ['{"text": [[[["a"]]]]}', "application/json", 400, "invalid_json"],
    [new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d]), "application/json", 400, "invalid_json"],
  ];
  for (const [body, type, status, code] of cases) {
    const res = await post("/notes/7", body, type);
    assert.equal(res.status, status, `${type} ${body}`);
    assert.equal((await errorOf(res)).code, code, `${type} ${body}`);
  }
  const typed = await post(
    "/notes/7",
    '{"text": "a"}',
    "application/merge-patch+json; charset=utf-8",
  );
  assert.equal(typed.status, 200);
});

Deno.test("an optional body reads as {} when absent, and is validated when present", async () => {
  const absent = await post("/read", null, null);
  const empty = await app.request("/read", {
    method: "POST",
    headers: { "content-type": "application/json", "content-length": "0" },
  });
  const present = await post("/read", '{"seq": 3}');
  const bad = await post("/read", '{"seq": "3"}');

  assert.deepEqual([absent.status, await absent.json()], [200, {}]);
  assert.deepEqual([empty.status, await empty.json()], [200, {}]);
  assert.deepEqual([present.status, await present.json()], [200, { seq: 3 }]);
  assert.equal(bad.status, 400);
  assert.match((await errorOf(bad)).message, /^Invalid read: "seq": /);
});

Deno.test("a header's error names it as it is sent", async () => {
  const good = await app.request("/stream", { headers: { "Last-Event-ID": "12" } });
  const bad = await app.request("/stream", { headers: { "Last-Event-ID": "x" } });

  assert.deepEqual(await good.json(), { last: "12" });
  assert.equal(bad.status, 400);
  const error = await errorOf(bad);
  assert.equal((error.details as { path: string }[])[0].path, "Last-Event-ID");
  assert.match(error.message, /^Invalid header: "Last-Event-ID": /);
});
