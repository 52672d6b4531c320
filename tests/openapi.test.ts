import assert from "node:assert/strict";
import * as v from "valibot";
import { createOpenApiDocument, type JsonObject, type Operation } from "../src/openapi.ts";

const PublishSchema = v.object({
  id: v.pipe(v.string(), v.uuid()),
  priority: v.optional(v.picklist(["HIGH", "NORMAL", "LOW"]), "NORMAL"),
  text: v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(500)),
});

const operations: Operation[] = [
  {
    method: "post",
    path: "/v1/events",
    summary: "Publish an event",
    tags: ["events"],
    security: "service",
    body: PublishSchema,
    responses: { 202: { description: "Accepted", schema: v.object({ id: v.string() }) } },
  },
  {
    method: "get",
    path: "/v1/conversations/:id/messages/:seq",
    summary: "Read one message",
    tags: ["conversations"],
    security: "user",
    query: v.object({
      limit: v.optional(v.pipe(v.string(), v.regex(/^\d+$/), v.transform(Number))),
    }),
    responses: { 200: { description: "The message" }, 404: { description: "No such message" } },
  },
  {
    method: "get",
    path: "/healthz",
    summary: "Liveness",
    tags: ["ops"],
    security: "none",
    responses: { 200: { description: "Alive" } },
  },
  {
    method: "put",
    path: "/v1/admin/controls",
    summary: "Set a kill switch",
    tags: ["ops"],
    security: "admin",
    body: v.object({ until: v.date(), when: v.custom<string>((x) => typeof x === "string") }),
    responses: { 204: { description: "Saved" } },
  },
];

const doc = createOpenApiDocument({ title: "relais", version: "1.2.3" }, operations);

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
  assert.equal(op?.responses["200"].content, undefined);
  assert.deepEqual(error.required, ["error"]);
  const inner = error.properties.error as JsonObject;
  assert.deepEqual(inner.required, ["code", "message"]);
  assert(((inner.properties as JsonObject).code as JsonObject).enum);
  assert.equal(doc.paths["/healthz"]?.get?.responses["401"], undefined);
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

Deno.test("openapi hoists recursive and named schemas into components", () => {
  type Node = { name: string; children: Node[] };
  const NodeSchema: v.GenericSchema<Node> = v.object({
    name: v.string(),
    children: v.array(v.lazy(() => NodeSchema)),
  });
  const Named = v.object({ x: v.number() });
  const result = createOpenApiDocument({ title: "t", version: "1" }, [
    {
      method: "post",
      path: "/tree",
      summary: "Tree",
      tags: ["t"],
      security: "none",
      body: v.object({ root: NodeSchema, named: Named }),
      responses: { 200: { description: "ok", schema: Named } },
    },
  ], { schemas: { Named } });
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

Deno.test("openapi refuses an operation declared twice", () => {
  assert.throws(
    () => createOpenApiDocument({ title: "t", version: "1" }, [operations[2], operations[2]]),
    /"GET \/healthz" is declared twice/,
  );
});
