/**
 * The demo page in Chromium against a real relais: notifications, chat between two
 * browsers, fallback to SSE and polling when the network blocks transports, and resume
 * after going offline. Screenshots go to tests/artifacts/.
 */

import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { envelope, startServer, type TestServer } from "../_support/server.ts";
import { type Browser, browserTest, launch, screenshot } from "./_browser.ts";

/** Opens the demo as `user`, connects, and waits until the SDK is welcomed. */
async function openDemo(
  browser: Browser,
  server: TestServer,
  user: string,
  options: { transport?: string; before?: (page: Page) => Promise<void> } = {},
): Promise<Page> {
  const { page } = browser;
  page.on("pageerror", (error) => console.error(`[${user}] page error:`, error.message));
  await options.before?.(page);
  await page.goto(`${server.origin}/?user=${user}`);
  await page.waitForSelector("body[data-ready]", { state: "attached" });
  await page.click("#connect-button");
  const transport = options.transport ? `[data-transport="${options.transport}"]` : "";
  await page.waitForSelector(`#status[data-state="open"]${transport}`, { timeout: 30_000 });
  return page;
}

function notification(user: string, title: string) {
  return envelope([user], {
    payload: { fr: { title, body: "Corps de test" }, en: { title, body: "Test body" } },
    routing: { retry: { ack_required: true } },
  });
}

async function titles(page: Page): Promise<string[]> {
  return await page.locator("#notifications .item-title").allTextContents();
}

/** Blocks WebSockets to relais the way a proxy would: the socket closes at once. */
async function blockWebSocket(page: Page) {
  await page.routeWebSocket(/\/v1\/ws/, (ws) => ws.close({ code: 1006, reason: "blocked" }));
}

browserTest(
  "the demo page shows a notification published over HTTP, and reads and acks it",
  async () => {
    const server = await startServer();
    const browser = await launch();
    try {
      const page = await openDemo(browser, server, "camille", { transport: "ws" });
      assert.equal((await server.publish(notification("camille", "Retour demandé"))).status, 202);
      await page.waitForSelector('#notifications .item[data-read="false"] >> text=Retour demandé');
      await page.waitForSelector('#unread[data-count="1"]');
      await page.waitForSelector("#notifications button >> text=Accuser réception");
      await screenshot(page, "demo-notification");

      await page.click("#notifications button >> text=Marquer comme lue");
      await page.waitForSelector('#unread[data-count="0"]');
      await page.click("#notifications button >> text=Accuser réception");
      await page.waitForSelector("#notifications button >> text=Réception confirmée");
      const inbox = await server.request("/v1/me/notifications", {
        bearer: await server.token("camille"),
      });
      const [item] = inbox.body.items as { read: boolean }[];
      assert.equal(item.read, true);

      // Live reactive-UI events, and the page in English.
      await page.click("#send-realtime");
      await page.waitForSelector("#events li >> text=activity.updated");
      await page.click('button[data-lang="en"]');
      await page.waitForSelector("#inbox-title >> text=Notifications");
      await page.waitForSelector("#status >> text=Connected over WebSocket as camille");
      assert.equal(await page.getAttribute("html", "lang"), "en");
      await screenshot(page, "demo-english");
    } finally {
      await browser.close();
      await server.close();
    }
  },
);

browserTest("two browsers chat with typing, receipts and presence", async () => {
  const server = await startServer();
  const camille = await launch();
  const yanis = await launch();
  try {
    const a = await openDemo(camille, server, "camille");
    const b = await openDemo(yanis, server, "yanis");

    await a.selectOption("#peer", "yanis");
    await a.click("#open-conversation");
    await a.waitForSelector("#conversation:not([hidden])");
    await a.fill("#message", "Bonjour Yanis");
    await a.press("#message", "Enter");
    await a.waitForSelector("#messages .message.mine >> text=Bonjour Yanis");

    // Yanis sees the new conversation appear, with Camille online, and opens it.
    const entry = b.locator("#conversations .conversation-button", { hasText: "camille" });
    await entry.waitFor();
    await b.waitForSelector('#conversations [data-presence="online"]');
    await entry.click();
    await b.waitForSelector("#messages .message >> text=Bonjour Yanis");

    // Camille sees her message read, then Yanis typing, then his answer.
    await a.waitForSelector("#messages .seen >> text=Vu par yanis");
    await b.type("#message", "Salut");
    await a.waitForSelector("#typing >> text=yanis écrit…");
    await b.type("#message", " Camille !");
    await b.press("#message", "Enter");
    await a.waitForSelector("#messages .message:not(.mine) >> text=Salut Camille !");
    await b.waitForSelector("#messages .message.mine >> text=Salut Camille !");
    await screenshot(a, "chat-camille");
    await screenshot(b, "chat-yanis");

    // Both see the same order.
    const order = async (page: Page) =>
      (await page.locator("#messages .message .text").allTextContents()).join(" | ");
    assert.equal(await order(a), await order(b));

    // Yanis closes his browser: Camille sees him offline.
    await yanis.close();
    await a.waitForSelector('#conversations [data-presence="offline"]', { timeout: 20_000 });
  } finally {
    await camille.close();
    await yanis.close();
    await server.close();
  }
});

browserTest("with WebSocket blocked the SDK falls back to SSE and still receives", async () => {
  const server = await startServer();
  const browser = await launch();
  try {
    const page = await openDemo(browser, server, "emma", {
      transport: "sse",
      before: blockWebSocket,
    });
    await server.publish(notification("emma", "Reçu par SSE"));
    await page.waitForSelector("#notifications >> text=Reçu par SSE");
    await page.waitForSelector('#status[data-transport="sse"] >> text=Connecté en SSE');
    // Reading works over HTTP while on SSE.
    await page.click("#notifications button >> text=Marquer comme lue");
    await page.waitForSelector('#unread[data-count="0"]');
    await screenshot(page, "fallback-sse");
  } finally {
    await browser.close();
    await server.close();
  }
});

browserTest(
  "with WebSocket and SSE blocked the SDK falls back to polling and still receives",
  async () => {
    const server = await startServer();
    const browser = await launch();
    try {
      const page = await openDemo(browser, server, "lucas", {
        transport: "poll",
        before: async (page) => {
          await blockWebSocket(page);
          await page.route(/\/v1\/sse/, (route) => route.abort("blockedbyclient"));
        },
      });
      await server.publish(notification("lucas", "Reçu par long-polling"));
      await page.waitForSelector("#notifications >> text=Reçu par long-polling");
      await page.waitForSelector("#notifications button >> text=Accuser réception");
      await page.click("#send-realtime");
      await page.waitForSelector("#events li >> text=activity.updated");
      await screenshot(page, "fallback-poll");
    } finally {
      await browser.close();
      await server.close();
    }
  },
);

browserTest("after going offline and back, the missed notifications arrive in order", async () => {
  const server = await startServer();
  const browser = await launch();
  try {
    const page = await openDemo(browser, server, "yanis", { transport: "ws" });
    await server.publish(notification("yanis", "Avant la coupure"));
    await page.waitForSelector("#notifications >> text=Avant la coupure");

    await browser.context.setOffline(true);
    await page.waitForSelector('#status[data-state="offline"]');
    await screenshot(page, "offline");
    for (const title of ["Manqué 1", "Manqué 2", "Manqué 3"]) {
      assert.equal((await server.publish(notification("yanis", title))).status, 202);
    }
    await browser.context.setOffline(false);
    await page.waitForSelector('#status[data-state="open"]', { timeout: 30_000 });
    await page.waitForSelector("#notifications >> text=Manqué 3");
    await page.waitForSelector('#unread[data-count="4"]');
    assert.deepEqual(await titles(page), ["Manqué 3", "Manqué 2", "Manqué 1", "Avant la coupure"]);
    await screenshot(page, "back-online");
  } finally {
    await browser.close();
    await server.close();
  }
});
