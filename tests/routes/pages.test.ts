/** The SDK, asset and page routes, and the development-only demo helpers. */

import assert from "node:assert/strict";
import { createPagesRoutes } from "../../routes/pages.ts";
import { SDK_JS } from "../../src/pages/bundles.ts";
import { startServer } from "../_support/server.ts";

Deno.test("the SDK is served as one JavaScript module with an ETag, and revalidates with 304", async () => {
  const app = createPagesRoutes({});
  const res = await app.request("/sdk/relais.js");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/javascript/);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  const body = await res.text();
  assert.equal(body, SDK_JS);
  assert.match(body, /export\s*\{[^}]*createRelais/);
  assert.doesNotMatch(body, /^\s*import\s/m, "no import left: one self-contained module");
  const etag = res.headers.get("etag")!;
  const again = await app.request("/sdk/relais.js", { headers: { "if-none-match": etag } });
  assert.equal(again.status, 304);
});

Deno.test("the ops page is served with a strict CSP and its labels in French", async () => {
  const app = createPagesRoutes({});
  const res = await app.request("/ops");
  assert.equal(res.status, 200);
  const csp = res.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  const html = await res.text();
  assert.match(html, /<html lang="fr">/);
  assert.match(html, /Clé d&#39;administration/);
  assert.match(html, /<script type="module" src="\/assets\/ops.js">/);
  assert.doesNotMatch(html, /https?:\/\//, "nothing from another origin");
  assert.equal((await app.request("/assets/ops.js")).status, 200);
  assert.equal((await app.request("/assets/relais.css")).status, 200);
});

Deno.test("without demo helpers there is no demo page", async () => {
  const app = createPagesRoutes({});
  assert.equal((await app.request("/")).status, 404);
  assert.equal((await app.request("/demo/token?user=camille")).status, 404);
});

Deno.test("a development server serves the demo page and demo tokens for demo users only", async () => {
  const server = await startServer();
  try {
    const page = await fetch(`${server.origin}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Utilisateur de démo/);
    const res = await server.request("/demo/token?user=yanis");
    assert.equal(res.status, 200);
    const me = await server.request("/v1/me/notifications", { bearer: res.body.token as string });
    assert.equal(me.status, 200);
    const bad = await server.request("/demo/token?user=admin");
    assert.equal(bad.status, 400);
    assert.equal((bad.body.error as { details: { path: string }[] }).details[0].path, "user");
  } finally {
    await server.close();
  }
});

Deno.test("a demo user can publish a demo notification to themself, and nobody else can", async () => {
  const server = await startServer();
  try {
    const token = await server.token("emma");
    const res = await server.request("/demo/events", {
      bearer: token,
      body: { type: "NOTIFICATION" },
    });
    assert.equal(res.status, 202);
    const inbox = await server.request("/v1/me/notifications", { bearer: token });
    assert.equal((inbox.body.items as unknown[]).length, 1);
    assert.equal(
      (await server.request("/demo/events", { body: { type: "NOTIFICATION" } })).status,
      401,
    );
    const wrong = await server.request("/demo/events", { bearer: token, body: { type: "EMAIL" } });
    assert.equal(wrong.status, 400);
  } finally {
    await server.close();
  }
});

Deno.test("a production server has no demo page and no demo helpers", async () => {
  const server = await startServer({ RELAIS_ENV: "production" });
  try {
    assert.equal(
      await fetch(`${server.origin}/`).then(async (r) => (await r.body?.cancel(), r.status)),
      404,
    );
    assert.equal((await server.request("/demo/token?user=camille")).status, 404);
    const sdk = await fetch(`${server.origin}/sdk/relais.js`);
    assert.equal(sdk.status, 200);
    await sdk.body?.cancel();
    const ops = await fetch(`${server.origin}/ops`);
    assert.equal(ops.status, 200);
    await ops.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("demo tokens are for the demo page's own origin: another origin is refused without CORS", async () => {
  const server = await startServer();
  try {
    const foreign = await fetch(`${server.origin}/demo/token?user=yanis`, {
      headers: { origin: "https://evil.test" },
    });
    const refused = await foreign.json();
    assert.equal(foreign.status, 403);
    assert.equal(refused.error.code, "forbidden");
    assert.equal(refused.token, undefined);
    assert.equal(foreign.headers.get("access-control-allow-origin"), null);
    // A fetch that says it comes from another site, without an Origin header, too.
    const crossSite = await fetch(`${server.origin}/demo/token?user=yanis`, {
      headers: { "sec-fetch-site": "cross-site" },
    });
    await crossSite.body?.cancel();
    assert.equal(crossSite.status, 403);
    // The demo page itself, on the server's origin, still gets its token.
    const own = await fetch(`${server.origin}/demo/token?user=yanis`, {
      headers: { origin: server.origin, "sec-fetch-site": "same-origin" },
    });
    assert.equal(own.status, 200);
    assert.equal(typeof (await own.json()).token, "string");
    assert.notEqual(own.headers.get("access-control-allow-origin"), "*");
    // The other demo helpers are same-origin only as well.
    const event = await fetch(`${server.origin}/demo/events`, {
      method: "POST",
      headers: { origin: "https://evil.test", "content-type": "application/json" },
      body: JSON.stringify({ type: "NOTIFICATION" }),
    });
    await event.body?.cancel();
    assert.equal(event.status, 403);
    assert.equal(event.headers.get("access-control-allow-origin"), null);
  } finally {
    await server.close();
  }
});
