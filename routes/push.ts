/**
 * Web Push: the server's VAPID public key, the user's push subscriptions
 * (`POST|DELETE /v1/me/push-subscriptions`) and the SDK's service worker.
 */

import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import { AppError } from "../src/errors.ts";
import { describe } from "../src/openapi.ts";
import { SW_JS } from "../src/pages/bundles.ts";
import type { PushStore, VapidKeys } from "../src/push/push_store.ts";
import {
  endpointId,
  type EndpointPolicy,
  pushSubscriptionSchema,
  PushUnsubscribeSchema,
} from "../src/push/subscription.ts";
import { jsonBody } from "./_json_body.ts";

/** Subscriptions one user keeps (one per browser and device); past it, the oldest go. */
export const MAX_PUSH_SUBSCRIPTIONS = 10;

/** Dependencies of {@linkcode createPushRoutes}. */
export interface PushRoutesDeps extends RequireUserDeps {
  /** Absent when Web Push is off (production without VAPID keys). */
  push?: {
    store: PushStore;
    vapid(): Promise<VapidKeys>;
    endpoints: EndpointPolicy;
  };
  maxBodyBytes: number;
}

/** `/v1/push/vapid-public-key`, `/v1/me/push-subscriptions` and `/sdk/relais-sw.js`. */
export function createPushRoutes(deps: PushRoutesDeps) {
  const { push } = deps;
  const enabled = () => {
    if (!push) throw new AppError("unavailable", "Web Push is off on this server");
    return push;
  };
  // Before the body is read: with push off, no subscription is valid, and none is wrong.
  const requireEnabled = createMiddleware<AppEnv>(async (_, next) => {
    enabled();
    await next();
  });
  const subscription = pushSubscriptionSchema(
    push?.endpoints ?? { hosts: [], allowLoopback: false },
  );
  return new Hono<AppEnv>()
    .get(
      "/v1/push/vapid-public-key",
      describe({
        summary: "The VAPID public key to subscribe with (`applicationServerKey`)",
        tags: ["push"],
        security: "none",
        responses: {
          200: { description: "`{public_key}`, base64url" },
          503: { description: "Web Push is off" },
        },
      }),
      async (c) => {
        const keys = await enabled().vapid();
        c.header("Cache-Control", "no-cache");
        return c.json({ public_key: keys.publicKey });
      },
    )
    .post(
      "/v1/me/push-subscriptions",
      describe({
        summary: "Register the browser's push subscription",
        description:
          "The body is the browser's `PushSubscription` as JSON. NOTIFICATIONs for the user reach it as encrypted Web Push messages while the user has no live connection, subject to preferences (channel `push`), quiet hours and the `push` kill switch. Only endpoints of the push services in RELAIS_PUSH_ENDPOINT_HOSTS are accepted (400 naming `endpoint`). Registering the same endpoint again replaces it; an endpoint belongs to one user at a time, so one another user registered (a shared browser) moves to this one. A user keeps at most 10, the oldest go first.",
        tags: ["push"],
        security: "user",
        responses: {
          201: { description: "Registered" },
          400: { description: "Invalid subscription or endpoint not allowed" },
          503: { description: "Web Push is off" },
        },
      }),
      requireUser(deps),
      requireEnabled,
      jsonBody(subscription, { maxBytes: deps.maxBodyBytes, what: "push subscription" }),
      async (c) => {
        const store = enabled().store;
        const body = c.req.valid("json");
        const id = await endpointId(body.endpoint);
        await store.putSubscription(c.get("user").id, {
          id,
          endpoint: body.endpoint,
          keys: { p256dh: body.keys.p256dh, auth: body.keys.auth },
          createdAt: Date.now(),
        }, MAX_PUSH_SUBSCRIPTIONS);
        return c.json({ id, endpoint: body.endpoint }, 201);
      },
    )
    .delete(
      "/v1/me/push-subscriptions",
      describe({
        summary: "Forget one of the user's push subscriptions",
        description: "The body names the subscription's `endpoint`.",
        tags: ["push"],
        security: "user",
        responses: {
          200: { description: "`{removed}`: false when it was not registered" },
          503: { description: "Web Push is off" },
        },
      }),
      requireUser(deps),
      requireEnabled,
      jsonBody(PushUnsubscribeSchema, { maxBytes: deps.maxBodyBytes, what: "push subscription" }),
      async (c) => {
        const store = enabled().store;
        const { endpoint } = c.req.valid("json");
        const removed = await store.removeSubscription(
          c.get("user").id,
          await endpointId(endpoint),
        );
        return c.json({ removed });
      },
    )
    .get(
      "/sdk/relais-sw.js",
      describe({
        summary: "The SDK's service worker: shows Web Push notifications, opens their link",
        tags: ["push"],
        security: "none",
        responses: { 200: { description: "JavaScript" } },
      }),
      (c) => {
        // Served under /sdk/, it may still control the whole origin it is registered on.
        c.header("Service-Worker-Allowed", "/");
        c.header("Cache-Control", "no-cache");
        // In a function: loaded with `importScripts`, it adds no global names.
        return c.body(`(() => {\n${SW_JS}})();\n`, 200, {
          "content-type": "text/javascript; charset=utf-8",
        });
      },
    );
}
