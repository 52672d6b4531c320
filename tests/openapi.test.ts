import assert from "node:assert/strict";
import { Hono } from "hono";
import * as v from "valibot";
import { jsonBody } from "../routes/_json_body.ts";
import {
  createOpenApiDocument,
  describe,
  type JsonObject,
  type OpenApiDocument,
  toOpenApiPath,
  undocumented,
} from "../src/openapi.ts";
import { validate } from "../src/validate.ts";
import { startServer } from "./_support/server.ts";

const PublishSchema = v.object({
  id: v.pipe(v.string(), v.uuid()),
  priority: v.optional(v.picklist(["HIGH", "NORMAL", "LOW"]), "NORMAL"),
  text: v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(500)),
});

const ok = () => new Response(null, { status: 204 });

const app = new Hono()
  .post(
    "/v1/events",
    describe({
      summary: "Publish an event",
      tags: ["events"],
      security: "service",
      responses: { 202: { description: "Accepted", schema: v.object({ id: v.string() }) } },
    }),
    jsonBody(PublishSchema, { maxBytes: 1024, what: "event" }),
    ok,
  )
  .get(
    "/v1/conversations/:id/messages/:seq",
    describe({
      summary: "Read one message",
      tags: ["conversations"],
      security: "user",
      responses: { 200: { description: "The message" }, 404: { description: "No such message" } },
    }),
    validate(
      "query",
      v.object({ limit: v.optional(v.pipe(v.string(), v.regex(/^\d+$/), v.transform(Number))) }),
    ),
    ok,
  )
  .get(
    "/healthz",
    describe({
      summary: "Liveness",
      tags: ["ops"],
      security: "none",
      responses: { 200: { description: "Alive" } },
    }),
    ok,
  )
  .put(
    "/v1/admin/controls",
    describe({
      summary: "Set a kill switch",
      tags: ["ops"],
      security: "admin",
      responses: { 204: { description: "Saved" } },
    }),
    jsonBody(v.object({ until: v.date(), when: v.custom<string>((x) => typeof x === "string") }), {
      maxBytes: 1024,
      what: "control",
    }),
    ok,
  )
  .get("/assets/app.css", undocumented(), ok)
  .get("/undescribed", ok);

const doc = await createOpenApiDocument(app, { title: "relais", version: "1.2.3" });

Deno.test("openapi document carries the converted request body schema", () => {
  const post = doc.paths["/v1/events"]?.post;
  assert(post);
  const schema = post.requestBody?.content["application/json"].schema;

  assert.equal(doc.openapi, "3.1.0");
  assert.deepEqual(doc.info, { title: "relais", version: "1.2.3" });
  assert.deepEqual(schema, {
    type: "object",
    properties: {
      id: { type: "string", format: "uuid" },
      priority: { enum: ["HIGH", "NORMAL", "LOW"], type: "string", default: "NORMAL" },
      text: { type: "string", minLength: 1, maxLength: 500 },
    },
    required: ["id", "text"],
  });
  assert.equal(post.requestBody?.required, true);
  assert.deepEqual(post.responses["202"].content, {
    "application/json": {
      schema: { type: "object", properties: { id: { type: "string" } }, required: ["id"] },
    },
  });
});

Deno.test("openapi document turns :params into {params} and lists them as path parameters", () => {
  const op = doc.paths["/v1/conversations/{id}/messages/{seq}"]?.get;
  assert(op);

  assert.equal(op.operationId, "get_v1_conversations_id_messages_seq");
  assert.deepEqual(op.parameters, [
    { name: "id", in: "path", required: true, schema: { type: "string" } },
    { name: "seq", in: "path", required: true, schema: { type: "string" } },
    {
      name: "limit",
      in: "query",
      required: false,
      schema: { type: "string", pattern: "^\\d+$" },
    },
  ]);
  assert.equal(Object.keys(doc.paths).some((path) => path.includes(":")), false);
  assert.equal(toOpenApiPath("/v1/users/:id/blocks/:other"), "/v1/users/{id}/blocks/{other}");
});

Deno.test("openapi document declares the security schemes and each operation's security", () => {
  const schemes = doc.components.securitySchemes;

  assert.deepEqual(schemes.userAuth, {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: schemes.userAuth.description,
  });
  assert.equal(schemes.serviceKey.type, "apiKey");
  assert.equal(schemes.serviceKey.in, "header");
  assert.equal(schemes.serviceKey.name, "X-API-Key");
  assert.deepEqual(doc.paths["/v1/events"]?.post?.security, [
    { serviceKey: [] },
    { serviceBearer: [] },
  ]);
  assert.deepEqual(doc.paths["/v1/conversations/{id}/messages/{seq}"]?.get?.security?.[0], {
    userAuth: [],
  });
  assert.deepEqual(doc.paths["/v1/admin/controls"]?.put?.security?.[0], { serviceKey: ["admin"] });
  assert.deepEqual(doc.paths["/healthz"]?.get?.security, []);
  assert.equal(doc.paths["/v1/events"]?.post?.["x-relais-security"], "service");
  for (const path of Object.values(doc.paths)) {
    for (const op of Object.values(path)) {
      for (const requirement of op.security) {
        for (const name of Object.keys(requirement)) assert(name in schemes, name);
      }
    }
  }
});

Deno.test("openapi error responses refer to the common error body", () => {
  const op = doc.paths["/v1/conversations/{id}/messages/{seq}"]?.get;
  const error = doc.components.schemas.Error as JsonObject & { properties: JsonObject };
  const ref = { "application/json": { schema: { $ref: "#/components/schemas/Error" } } };

  assert.deepEqual(op?.responses["404"].content, ref);
  assert.deepEqual(op?.responses["401"].content, ref);
  assert.deepEqual(op?.responses["400"].content, ref);
  assert.match(String(op?.responses["400"].description), /invalid/);
  assert.equal(op?.responses["200"].content, undefined);
  assert.deepEqual(error.required, ["error"]);
  const inner = error.properties.error as JsonObject;
  assert.deepEqual(inner.required, ["code", "message"]);
  assert(((inner.properties as JsonObject).code as JsonObject).enum);
  assert.equal(doc.paths["/healthz"]?.get?.responses["401"], undefined);
  assert.equal(doc.paths["/healthz"]?.get?.responses["400"], undefined);
});

Deno.test("openapi conversion of unsupported schemas does not throw and says what was lost", () => {
  const schema = doc.paths["/v1/admin/controls"]?.put?.requestBody?.content["application/json"]
    .schema;
  assert(schema);

  assert.deepEqual((schema.properties as JsonObject).until, {});
  assert.match(String(schema.$comment), /date/);
  assert.equal(
    doc.paths["/v1/events"]?.post?.requestBody?.content["application/json"].schema
      .$comment,
    undefined,
  );
});

Deno.test("openapi document leaves out the routes marked undocumented or never described", () => {
  assert.equal(doc.paths["/assets/app.css"], undefined);
  assert.equal(doc.paths["/undescribed"], undefined);
  assert.deepEqual(doc.tags, [{ name: "events" }, { name: "conversations" }, { name: "ops" }]);
});

Deno.test("openapi hoists recursive and named schemas into components", async () => {
  type Node = { name: string; children: Node[] };
  const NodeSchema: v.GenericSchema<Node> = v.object({
    name: v.string(),
    children: v.array(v.lazy(() => NodeSchema)),
  });
  const Named = v.object({ x: v.number() });
  const tree = new Hono().post(
    "/tree",
    describe({
      summary: "Tree",
      tags: ["t"],
      security: "none",
      responses: { 200: { description: "ok", schema: Named } },
    }),
    jsonBody(v.object({ root: NodeSchema, named: Named }), { maxBytes: 1024, what: "tree" }),
    ok,
  );
  const result = await createOpenApiDocument(tree, { title: "t", version: "1" }, {
    schemas: { Named },
  });
  const text = JSON.stringify(result);

  assert.equal(text.includes("#/$defs/"), false);
  assert.equal(text.includes('"$defs"'), false);
  for (const [, name] of text.matchAll(/"#\/components\/schemas\/([^"]+)"/g)) {
    assert(name in result.components.schemas, `dangling $ref to ${name}`);
  }
  assert.deepEqual(result.components.schemas.Named, {
    type: "object",
    properties: { x: { type: "number" } },
    required: ["x"],
  });
  assert.deepEqual(result.paths["/tree"]?.post?.responses["200"].content, {
    "application/json": { schema: { $ref: "#/components/schemas/Named" } },
  });
});

Deno.test("openapi refuses an operation declared twice", async () => {
  const liveness = describe({
    summary: "Liveness",
    tags: ["ops"],
    security: "none",
    responses: { 200: { description: "Alive" } },
  });
  const twice = new Hono().get("/healthz", liveness, ok).get("/healthz", liveness, ok);

  await assert.rejects(
    () => createOpenApiDocument(twice, { title: "t", version: "1" }),
    /"GET \/healthz" is declared twice/,
  );
});

Deno.test("openapi refuses a validated route that has no description", async () => {
  const bare = new Hono().get("/v1/x", validate("query", v.object({ q: v.string() })), ok);

  await assert.rejects(
    () => createOpenApiDocument(bare, { title: "t", version: "1" }),
    /"GET \/v1\/x" has validators but no description/,
  );
});

/**
 * Routes mounted on purpose without a description: the pages' assets and the demo page
 * with its development-only helpers.
 */
const UNDOCUMENTED = new Set([
  "GET /",
  "GET /assets/relais.css",
  "GET /assets/ops.js",
  "GET /assets/charts.css",
  "GET /assets/demo.js",
  "GET /demo/token",
  "POST /demo/events",
  "POST /demo/conversations",
]);

Deno.test("openapi document of the app lists exactly the routes it mounts", async () => {
  // Development, with the directory, preferences, mail and messaging: every route mounted.
  const server = await startServer();
  try {
    const mounted = new Set(
      server.relais.app.routes.filter((route) => route.method !== "ALL")
        .map((route) => `${route.method} ${toOpenApiPath(route.path)}`),
    );
    const res = await server.request("/openapi.json");
    const document = res.body as unknown as OpenApiDocument;
    const documented = new Set(
      Object.entries(document.paths).flatMap(([path, item]) =>
        Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`)
      ),
    );

    assert.equal(res.status, 200);
    for (const route of UNDOCUMENTED) assert(mounted.has(route), `${route} is not mounted`);
    assert.deepEqual(
      [...mounted].filter((route) => !documented.has(route) && !UNDOCUMENTED.has(route)),
      [],
      "mounted but missing from the document",
    );
    assert.deepEqual(
      [...documented].filter((route) => !mounted.has(route) || UNDOCUMENTED.has(route)),
      [],
      "in the document but not mounted, or documented though listed as undocumented",
    );
    assert(documented.has("POST /v1/events") && documented.has("GET /v1/users/{id}"));
    assert(documented.has("GET /openapi.json") && documented.has("GET /docs"));
  } finally {
    await server.close();
  }
});
