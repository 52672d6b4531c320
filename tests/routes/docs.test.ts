import assert from "node:assert/strict";
import { Hono } from "hono";
import * as v from "valibot";
import { jsonBody } from "../../routes/_json_body.ts";
import { createOpenApiDocument, describe } from "../../src/openapi.ts";
import { validate } from "../../src/validate.ts";
import { createDocsRoutes } from "../../routes/docs.ts";

const ok = () => new Response(null, { status: 204 });
const api = new Hono()
  .post(
    "/v1/events",
    describe({
      summary: "Publish an event <script>alert(1)</script>",
      tags: ["events"],
      security: "service",
      responses: { 202: { description: "Accepted" } },
    }),
    jsonBody(v.object({ note: v.pipe(v.string(), v.regex(/^<b>$/)) }), {
      maxBytes: 1024,
      what: "event",
    }),
    ok,
  )
  .get(
    "/v1/events/:id",
    describe({
      summary: "Delivery status",
      tags: ["events"],
      security: "service",
      responses: { 200: { description: "Counts" } },
    }),
    ok,
  )
  .get(
    "/v1/me/notifications",
    describe({
      summary: "List my notifications",
      tags: ["me"],
      security: "user",
      responses: { 200: { description: "A page" } },
    }),
    validate("query", v.object({ after: v.optional(v.string()) })),
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
  );
const info = { title: "relais <beta>", version: "1.0.0", description: 'Tom & Jerry\'s "API"' };
const document = await createOpenApiDocument(api, info);
let builds = 0;
const app = createDocsRoutes(() => {
  builds++;
  return createOpenApiDocument(api, info);
});

Deno.test("openapi.json answers the document", async () => {
  const res = await app.request("/openapi.json");

  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), JSON.parse(JSON.stringify(document)));
  await (await app.request("/docs")).text();
  assert.equal(builds, 1);
});

Deno.test("docs page lists every operation by tag with its method, path, summary and security", async () => {
  const res = await app.request("/docs");
  const html = await res.text();

  assert.equal(res.status, 200);
  assert.match(res.headers.get("Content-Type") ?? "", /^text\/html/);
  assert.match(html, /^<!doctype html>\n<html lang="en">/);
  for (const tag of ["events", "me", "ops"]) {
    assert.match(html, new RegExp(`<h2 id="[^"]+">${tag}</h2>`));
  }
  for (const path of ["/v1/events", "/v1/events/{id}", "/v1/me/notifications", "/healthz"]) {
    assert(html.includes(`<code>${path}</code>`), path);
  }
  assert(html.includes(`<td class="method">POST</td>`));
  assert(html.includes("Delivery status"));
  assert(html.includes("<li>202: Accepted</li>"));
  assert(html.includes("Service key"));
  assert(html.includes("User token"));
  assert(html.includes("<code>after</code> (query)"));
  assert(html.includes("<details><summary>Body JSON schema</summary>"));
  assert(html.includes("&quot;pattern&quot;: &quot;^&lt;b&gt;$&quot;"));
});

Deno.test("docs page escapes every text taken from the document", async () => {
  const html = await (await app.request("/docs")).text();

  assert.equal(html.includes("<script"), false);
  assert(html.includes("Publish an event &lt;script&gt;alert(1)&lt;/script&gt;"));
  assert(html.includes("relais &lt;beta&gt;"));
  assert(html.includes("Tom &amp; Jerry&#39;s &quot;API&quot;"));
});

Deno.test("docs page loads nothing from elsewhere", async () => {
  const res = await app.request("/docs");
  const html = await res.text();

  assert.equal(/<script|<link|src=|https?:\/\//.test(html), false);
  assert.match(res.headers.get("Content-Security-Policy") ?? "", /default-src 'none'/);
});
