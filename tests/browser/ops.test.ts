/** The ops page in Chromium: the admin key, live actors, kill switches, dead letters, metrics. */

import assert from "node:assert/strict";
import { envelope, eventually, SERVICE_KEY, startServer } from "../_support/server.ts";
import { browserTest, launch, screenshot } from "./_browser.ts";

browserTest(
  "the ops page shows actors, dead letters and metrics, and flips kill switches, with the key kept out of the URL",
  async () => {
    const server = await startServer({ RELAIS_ACK_RETRY_BASE_MS: "50" });
    const browser = await launch();
    try {
      const { client } = await server.login("camille");
      const lost = envelope(["camille"], { routing: { retry: { ack_required: true, limit: 1 } } });
      await server.publish(lost);
      await eventually(
        async () => {
          const res = await server.request("/v1/admin/dead-letters", { apiKey: SERVICE_KEY });
          return (res.body.items as unknown[]).length === 1;
        },
        5000,
        "a dead letter",
      );

      const { page } = browser;
      page.on("pageerror", (error) => console.error("page error:", error.message));
      await page.goto(`${server.origin}/ops`);
      await page.waitForSelector("body[data-ready]", { state: "attached" });
      await page.waitForSelector("#ops-status >> text=Saisissez une clé");
      assert.equal(await page.isHidden("#actors"), true);

      await page.fill("#admin-key", "not-the-key-0123456789");
      await page.press("#admin-key", "Enter");
      await page.waitForSelector("#ops-status >> text=Clé refusée (401)");

      await page.fill("#admin-key", SERVICE_KEY);
      await page.press("#admin-key", "Enter");
      await page.waitForSelector('#actor-rows tr[data-actor="user:camille"]');
      await page.waitForSelector('#stats [data-metric="ws"] dd >> text=1');
      await page.waitForSelector('#dead-count[data-count="1"]');
      await page.waitForSelector(`#dead-rows >> text=${(lost.metadata as { id: string }).id}`);

      await page.click('#actor-rows tr[data-actor="user:camille"] button');
      await page.waitForSelector("#actor-detail-body >> text=connections");

      // A kill switch for one user, shown, then removed.
      await page.selectOption("#scope-type", "USER");
      await page.fill("#scope-id", "yanis");
      await page.check('input[name="feature"][value="messaging"]');
      await page.fill("#reason", "Abus signalé");
      await page.click('#control-form button[type="submit"]');
      await page.waitForSelector(
        '#control-rows tr[data-control="user:yanis"] >> text=Abus signalé',
      );
      const controls = await server.request("/v1/admin/controls", { apiKey: SERVICE_KEY });
      assert.equal(controls.body.count, 1);
      await screenshot(page, "ops");

      await page.click('#control-rows tr[data-control="user:yanis"] button');
      await page.waitForSelector("#controls-empty:not([hidden])");

      // The key lives in this tab's sessionStorage, never in an address.
      assert.ok(!page.url().includes(SERVICE_KEY));
      assert.equal(
        await page.evaluate(() => sessionStorage.getItem("relais.adminKey")),
        SERVICE_KEY,
      );
      await page.reload();
      await page.waitForSelector('#actor-rows tr[data-actor="user:camille"]');
      await page.click("#forget-key");
      await page.waitForSelector("#actors[hidden]", { state: "attached" });
      assert.equal(await page.evaluate(() => sessionStorage.getItem("relais.adminKey")), null);
      await client.close();
    } finally {
      await browser.close();
      await server.close();
    }
  },
);
