/// <reference lib="dom" />
/**
 * Web Push in Chromium against a real relais: the SDK's `subscribePush()` registers the
 * real service worker served at `/sdk/relais-sw.js`, fetches the VAPID key and subscribes;
 * a push delivered to that worker shows the notification.
 *
 * Headless Chromium without a network cannot reach its browser's push service, so the
 * subscription itself may fail there: the test then checks the SDK's error, and delivers
 * the push to the worker through the DevTools protocol (`ServiceWorker.deliverPushMessage`),
 * which runs the worker's real `push` handler.
 */

import assert from "node:assert/strict";
import type { CDPSession } from "playwright-core";
import { eventually, SERVICE_KEY, startServer } from "../_support/server.ts";
import { browserTest, launch, screenshot } from "./_browser.ts";

/** The id of the worker registration for `scope`, as the DevTools protocol reports it. */
function registrationId(cdp: CDPSession, scope: string): Promise<string> {
  return new Promise((resolve) => {
    cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations }) => {
      const found = registrations.find((r) => r.scopeURL === scope && !r.isDeleted);
      if (found) resolve(found.registrationId);
    });
  });
}

browserTest(
  "subscribePush registers the service worker, and a push shows the notification",
  async () => {
    const server = await startServer();
    const browser = await launch();
    try {
      const { page, context } = browser;
      page.on("pageerror", (error) => console.error("page error:", error.message));
      await context.grantPermissions(["notifications"], { origin: server.origin });
      const keyRequests: string[] = [];
      page.on("request", (req) => {
        if (req.url().endsWith("/v1/push/vapid-public-key")) keyRequests.push(req.url());
      });
      await page.goto(`${server.origin}/?user=camille`);
      await page.waitForSelector("body[data-ready]", { state: "attached" });
      await page.click("#connect-button");
      await page.waitForSelector('#status[data-state="open"]');

      // The demo page offers it once connected.
      assert.equal(await page.locator("#enable-push").isEnabled(), true);
      const outcome = await page.evaluate(async () => {
        const client = (globalThis as unknown as {
          relais: {
            subscribePush(o: { subscribeTimeoutMs: number }): Promise<{ endpoint: string }>;
          };
        }).relais;
        try {
          // Without a network, the browser's push service never answers: a short bound.
          const info = await client.subscribePush({ subscribeTimeoutMs: 3000 });
          return { ok: true as const, endpoint: info.endpoint };
        } catch (error) {
          const e = error as Error & { code?: string };
          return { ok: false as const, name: e.name, code: e.code, message: e.message };
        }
      });
      await screenshot(page, "push-subscribe");

      // What is real either way: the worker is registered and active at the SDK's URL, with
      // the whole origin as its scope, and the SDK asked relais for its VAPID key.
      const worker = await page.evaluate(async () => {
        const registration = await navigator.serviceWorker.getRegistration("/");
        return {
          script: registration?.active?.scriptURL,
          state: registration?.active?.state,
          scope: registration?.scope,
        };
      });
      assert.equal(worker.script, `${server.origin}/sdk/relais-sw.js`);
      assert.equal(worker.state, "activated");
      assert.equal(worker.scope, `${server.origin}/`);
      assert.ok(keyRequests.length >= 1, "the VAPID key was fetched");
      // The browser runs it (the DevTools protocol sees it too).
      const [running] = context.serviceWorkers();
      assert.equal(running?.url(), `${server.origin}/sdk/relais-sw.js`);
      if (outcome.ok) {
        // A push service answered: the subscription is registered with relais.
        const doc = await server.request("/v1/users/camille/export", { apiKey: SERVICE_KEY });
        const endpoints = (doc.body.push_subscriptions as { endpoint: string }[])
          .map((s) => s.endpoint);
        assert.ok(endpoints.includes(outcome.endpoint));
      } else {
        // No push service reachable: a clear error from the step that failed.
        console.log(`subscribePush without a push service: ${outcome.code}: ${outcome.message}`);
        assert.equal(outcome.name, "PushError");
        assert.equal(outcome.code, "subscribe");
        assert.equal(
          outcome.message,
          "Cannot subscribe to the push service: no answer within 3000 ms",
        );
      }

      // A push reaches the worker, which shows it as a notification.
      const cdp = await context.newCDPSession(page);
      const scope = `${server.origin}/`;
      const registration = registrationId(cdp, scope);
      await cdp.send("ServiceWorker.enable");
      const payload = {
        id: "0193a1e2-7c00-7000-8000-0000000000aa",
        seq: 7,
        title: "Retour demandé",
        body: "Camille attend votre avis",
        url: `${server.origin}/?from=push`,
        tag: "feedback-7",
      };
      // Records what the worker asks the browser to show, and the browser's answer.
      await running.evaluate(() => {
        const worker = globalThis as unknown as {
          shown?: { title: string; options: Record<string, unknown>; result?: string };
          registration: {
            showNotification(title: string, options: Record<string, unknown>): Promise<void>;
          };
        };
        const registration = worker.registration;
        const show = registration.showNotification.bind(registration);
        registration.showNotification = (title, options) => {
          const call: NonNullable<typeof worker.shown> = { title, options };
          worker.shown = call;
          return show(title, options).then(
            () => void (call.result = "shown"),
            (error) => {
              call.result = `failed: ${error}`;
              throw error;
            },
          );
        };
      });
      await cdp.send("ServiceWorker.deliverPushMessage", {
        origin: server.origin,
        registrationId: await registration,
        data: JSON.stringify(payload),
      });
      // The worker's push handler asks the browser to show it, and the browser does.
      const shown = await eventually(
        () =>
          running.evaluate(() => {
            const { shown } = globalThis as unknown as {
              shown?: { title: string; options: Record<string, unknown>; result?: string };
            };
            return shown?.result && shown;
          }),
        10_000,
        "the notification to be shown",
      );
      assert.deepEqual(shown, {
        title: "Retour demandé",
        options: {
          body: "Camille attend votre avis",
          tag: "feedback-7",
          renotify: true,
          data: { url: payload.url, id: payload.id, seq: 7 },
        },
        result: "shown",
      });
    } finally {
      await browser.close();
      await server.close();
    }
  },
);
