/**
 * What relais serves to browsers: the SDK as one ES module, the ops page, and in
 * development the demo page with its helper routes (demo tokens, demo events, demo
 * conversations). Nothing comes from a CDN.
 */

import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import * as v from "valibot";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import { AppError } from "../src/errors.ts";
import { CHARTS_CSS, DEMO_JS, OPS_JS, SDK_JS } from "../src/pages/bundles.ts";
import type { DemoHelpers } from "../src/pages/demo_helpers.ts";
import { demoPage } from "../src/pages/demo_page.ts";
import { DEMO_USERS } from "../src/pages/demo_users.ts";
import { opsPage } from "../src/pages/ops_page.ts";
import { PAGE_CSS } from "../src/pages/style.ts";
import { EnvelopeSchema } from "../src/schemas/envelope.ts";
import { describe, undocumented } from "../src/openapi.ts";
import { parseOrThrow, validate } from "../src/validate.ts";
import { jsonBody } from "./_json_body.ts";

/** The development-only helpers of the demo page, and how to authenticate its users. */
export interface DemoDeps extends RequireUserDeps, DemoHelpers {}

/** Dependencies of {@linkcode createPagesRoutes}. */
export interface PagesRoutesDeps {
  /** Present in development only: mounts the demo page and its helpers. */
  demo?: DemoDeps;
}

/** Query of `GET /demo/token`. */
export const DemoTokenQuerySchema = v.object({
  user: v.picklist(DEMO_USERS, `expected one of ${DEMO_USERS.join(", ")}`),
});

/** Body of `POST /demo/events`. */
export const DemoEventSchema = v.strictObject({
  type: v.picklist(["NOTIFICATION", "REALTIME"], 'expected "NOTIFICATION" or "REALTIME"'),
});

/** Body of `POST /demo/conversations`. */
export const DemoConversationSchema = v.strictObject({
  with: v.picklist(DEMO_USERS, `expected one of ${DEMO_USERS.join(", ")}`),
});

const TOKEN_TTL_SECONDS = 3600;

/** Pages allow nothing but their own origin: no inline script, no third party. */
const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** An asset answer with an ETag, so browsers revalidate instead of downloading again. */
async function asset(c: Context<AppEnv>, body: string, type: string) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body));
  const etag = `"${
    Array.from(new Uint8Array(digest).slice(0, 12), (b) => b.toString(16).padStart(2, "0"))
      .join("")
  }"`;
  c.header("ETag", etag);
  c.header("Cache-Control", "no-cache");
  if (c.req.header("if-none-match") === etag) return c.body(null, 304);
  return c.body(body, 200, { "content-type": type });
}

function htmlPage(c: Context<AppEnv>, html: string) {
  c.header("Content-Security-Policy", PAGE_CSP);
  c.header("Cache-Control", "no-cache");
  return c.html(html);
}

/**
 * Refuses a browser request made by a page of another origin: an `Origin` that is not the
 * server's own, or `Sec-Fetch-Site` saying another site sent it. Requests without either
 * (curl, a server) pass; they are no browser page's.
 */
function assertSameOrigin(c: Context): void {
  const origin = c.req.header("Origin");
  const site = c.req.header("Sec-Fetch-Site");
  let foreign = site === "cross-site" || site === "same-site";
  if (origin !== undefined) {
    try {
      foreign ||= new URL(origin).host !== c.req.header("Host");
    } catch {
      foreign = true;
    }
  }
  if (foreign) {
    const from = origin === undefined
      ? `A ${site} request`
      : `Origin ${JSON.stringify(origin.slice(0, 100))}`;
    throw new AppError(
      "forbidden",
      `${from} is not allowed: the demo helpers answer the demo page's own origin only`,
    );
  }
}

/**
 * The demo helpers hand out tokens: same origin only, whatever the app-wide CORS allows
 * (any origin in development). The CORS headers it set are taken back before anything
 * is answered, a refusal included.
 */
const sameOriginOnly: MiddlewareHandler<AppEnv> = async (c, next) => {
  c.res.headers.delete("Access-Control-Allow-Origin");
  c.res.headers.delete("Access-Control-Allow-Credentials");
  c.res.headers.delete("Access-Control-Expose-Headers");
  assertSameOrigin(c);
  await next();
};

/** Lazily rendered pages (they are constant). */
const rendered: { demo?: string; ops?: string } = {};

/** `GET /sdk/relais.js`, `/assets/*`, `/ops`, and in development `/` and `/demo/*`. */
export function createPagesRoutes(deps: PagesRoutesDeps) {
  const js = "text/javascript; charset=utf-8";
  const app = new Hono<AppEnv>()
    .get(
      "/sdk/relais.js",
      describe({
        summary: "The client SDK as one ES module (WebSocket → SSE → poll, resume, de-duplication)",
        tags: ["realtime"],
        security: "none",
        responses: { 200: { description: "JavaScript" } },
      }),
      (c) => {
        // Applications on other origins load the SDK as a module script.
        c.header("Access-Control-Allow-Origin", "*");
        return asset(c, SDK_JS, js);
      },
    )
    .get(
      "/assets/relais.css",
      undocumented(),
      (c) => asset(c, PAGE_CSS, "text/css; charset=utf-8"),
    )
    .get("/assets/ops.js", undocumented(), (c) => asset(c, OPS_JS, js))
    .get(
      "/assets/charts.css",
      undocumented(),
      (c) => asset(c, CHARTS_CSS, "text/css; charset=utf-8"),
    )
    .get(
      "/ops",
      describe({
        summary: "The ops page: live actors, kill switches, dead letters, metrics (admin key)",
        tags: ["ops"],
        security: "none",
        responses: { 200: { description: "HTML" } },
      }),
      (c) => htmlPage(c, rendered.ops ??= opsPage()),
    );

  const demo = deps.demo;
  if (!demo) return app;

  // The demo page and its helpers exist in development only: they are no part of the API.
  return app
    .get("/", undocumented(), (c) => htmlPage(c, rendered.demo ??= demoPage()))
    .get("/assets/demo.js", undocumented(), (c) => asset(c, DEMO_JS, js))
    .use("/demo/*", sameOriginOnly)
    .get("/demo/token", undocumented(), validate("query", DemoTokenQuerySchema), async (c) => {
      const { user } = c.req.valid("query");
      const token = await demo.signToken(user, TOKEN_TTL_SECONDS);
      c.header("Cache-Control", "no-store");
      return c.json({
        user,
        token,
        expires_at: new Date(Date.now() + TOKEN_TTL_SECONDS * 1000).toISOString(),
      });
    })
    .post(
      "/demo/events",
      undocumented(),
      requireUser(demo),
      jsonBody(DemoEventSchema, { maxBytes: 1024, what: "body" }),
      async (c) => {
        const { type } = c.req.valid("json");
        const user = c.get("user").id;
        const now = new Date().toISOString();
        const notification = {
          metadata: {
            id: crypto.randomUUID(),
            type,
            emitter: "demo",
            source: "feedback",
            topic: "feedback.requested",
            timestamp: now,
          },
          payload: {
            fr: { title: "Demande de retour", body: `Un enseignant attend votre avis (${now}).` },
            en: {
              title: "Feedback requested",
              body: `A teacher is waiting for your feedback (${now}).`,
            },
          },
          routing: { audience: { type: "USER", targets: [user] }, retry: { ack_required: true } },
        };
        const realtime = {
          metadata: {
            id: crypto.randomUUID(),
            type,
            emitter: "demo",
            source: "activity",
            topic: "activity.updated",
            operation: "update",
            timestamp: now,
          },
          payload: { activityId: 42, title: "Portfolio — semestre 1", updatedFields: ["title"] },
          routing: { audience: { type: "USER", targets: [user] } },
        };
        const envelope = parseOrThrow(
          EnvelopeSchema,
          type === "NOTIFICATION" ? notification : realtime,
          "envelope",
        );
        return c.json(await demo.publish(envelope), 202);
      },
    )
    .post(
      "/demo/conversations",
      undocumented(),
      requireUser(demo),
      jsonBody(DemoConversationSchema, { maxBytes: 1024, what: "body" }),
      async (c) => {
        const body = c.req.valid("json");
        if (body.with === c.get("user").id) {
          throw new AppError("validation_failed", "Cannot open a conversation with yourself", {
            details: [{ path: "with", message: "expected another demo user" }],
          });
        }
        return c.json(await demo.createConversation([c.get("user").id, body.with]));
      },
    );
}
