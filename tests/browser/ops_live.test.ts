/** The ops page's live charts, lookups and actions on a user, in Chromium. */

import assert from "node:assert/strict";
import type { AppDeps } from "../../src/app/app.ts";
import { envelope, eventually, SERVICE_KEY, startServer } from "../_support/server.ts";
import { browserTest, launch, screenshot } from "./_browser.ts";

browserTest(
  "the ops page charts the last minutes live, looks up users, events and conversations, and disconnects and switches off a user",
  async () => {
    const server = await startServer({}, {
      // Samples every 100 ms rather than 5 s: the charts move within the test.
      adapt: (deps: AppDeps) => ({ ...deps, opsHistory: { intervalMs: 100 } }),
    });
    const browser = await launch();
    const refused: string[] = [];
    try {
      const { page } = browser;
      page.on("pageerror", (error) => console.error("page error:", error.message));
      page.on("console", (message) => {
        if (/Content.Security.Policy|Refused to/i.test(message.text())) {
          refused.push(message.text());
        }
      });
      await page.goto(`${server.origin}/ops`);
      await page.waitForSelector("body[data-ready]", { state: "attached" });
      await page.fill("#admin-key", SERVICE_KEY);
      await page.press("#admin-key", "Enter");

      // ——— charts: they follow connections and deliveries as they happen ———
      await page.waitForSelector("#chart-connections[data-last_ws='0'] canvas");
      assert.equal(await page.isHidden("#chart-ingest-lag"), true, "the ingest is off");
      const { client } = await server.login("camille");
      await page.waitForSelector("#chart-connections[data-last_ws='1']");
      const acked = envelope(["camille"], { routing: { retry: { ack_required: true } } });
      await server.publish(acked);
      for (let i = 0; i < 4; i++) await server.publish(envelope(["camille"]));
      await page.waitForSelector("#chart-deliveries:not([data-max_deliveries_per_s='0'])");
      await page.waitForSelector("#chart-latency:not([data-max_p50_ms='0'])");
      await page.waitForSelector("#chart-mail[data-last_breaker='0']");
      // uPlot's stylesheet came from the server's own origin.
      const position = await page.evaluate(
        "getComputedStyle(document.querySelector('#chart-deliveries .u-wrap')).position",
      );
      assert.equal(position, "relative");

      // ——— a user ———
      await page.selectOption("#lookup-kind", "user");
      await page.fill("#lookup-id", "camille");
      await page.click('#lookup-form button[type="submit"]');
      await page.waitForSelector(
        '#lookup-result[data-kind="user"] [data-field="connections"] dd >> text=1',
      );
      await page.waitForSelector('#lookup-stats [data-field="unread"] dd >> text=5');
      const eventId = (acked.metadata as { id: string }).id;
      await page.waitForSelector(`#lookup-pending >> text=${eventId}`);
      await page.waitForSelector(`#lookup-deliveries >> text=${eventId}`);

      // ——— an event: delivered, then acked ———
      await page.selectOption("#lookup-kind", "event");
      await page.fill("#lookup-id", eventId);
      await page.click('#lookup-form button[type="submit"]');
      await page.waitForSelector('#lookup-bar .segment[data-part="delivered"][data-count="1"]');
      client.send({ type: "ack", id: eventId });
      await eventually(
        async () => {
          const status = await server.request(`/v1/events/${eventId}`, { apiKey: SERVICE_KEY });
          return status.body.acked === 1;
        },
        5000,
        "the ack recorded",
      );
      await page.click('#lookup-form button[type="submit"]');
      await page.waitForSelector('#lookup-bar .segment[data-part="acked"][data-count="1"]');
      assert.equal(await page.isHidden('#lookup-bar .segment[data-part="delivered"]'), true);

      // ——— a conversation ———
      const created = await server.request("/v1/conversations", {
        method: "POST",
        apiKey: SERVICE_KEY,
        body: { kind: "group", title: "Relecture", members: ["camille", "yanis"] },
      });
      await page.selectOption("#lookup-kind", "conversation");
      await page.fill("#lookup-id", created.body.id as string);
      await page.click('#lookup-form button[type="submit"]');
      await page.waitForSelector('#lookup-members tr[data-member="yanis"]');
      await page.waitForSelector('#lookup-stats [data-field="members"] dd >> text=2');

      // ——— disconnect ———
      await page.selectOption("#lookup-kind", "user");
      await page.fill("#lookup-id", "camille");
      await page.click('#lookup-form button[type="submit"]');
      await page.waitForSelector('#lookup-stats [data-field="connections"] dd >> text=1');
      await page.click("#lookup-disconnect");
      assert.equal((await client.closed).code, 4001);
      await page.waitForSelector('#lookup-stats [data-field="connections"] dd >> text=0');
      await page.waitForSelector("#lookup-status >> text=1 connexion(s) fermée(s).");
      await page.waitForSelector("#chart-connections[data-last_ws='0']");
      await page.waitForSelector('#lookup-stats [data-field="unread"] dd >> text=5');

      // ——— switch off ———
      await page.fill("#lookup-reason", "Abus signalé");
      await page.click('#lookup-switch-off button[type="submit"]');
      await page.waitForSelector('#lookup-controls tr[data-control="user:camille"]');
      await page.waitForSelector(
        '#control-rows tr[data-control="user:camille"] >> text=Abus signalé',
      );
      const control = await server.request("/v1/admin/controls/user:camille", {
        apiKey: SERVICE_KEY,
      });
      assert.deepEqual(control.body.features, ["realtime", "notifications", "messaging", "email"]);
      assert.deepEqual(control.body.updated_by, { service: "test", by: "ops page" });
      const audit = await server.request("/v1/admin/controls/audit", { apiKey: SERVICE_KEY });
      assert.deepEqual(
        (audit.body.entries as { action: string; control_id: string }[]).map((e) =>
          `${e.action} ${e.control_id}`
        ),
        ["put user:camille", "disconnect user:camille"],
      );
      await screenshot(page, "ops-live");

      // A fresh page opens on the minutes already sampled, not on an empty chart.
      await page.reload();
      await page.waitForSelector("#chart-deliveries:not([data-max_deliveries_per_s='0']) canvas");
      assert.deepEqual(refused, [], "the page's policy refused nothing");
    } finally {
      await browser.close();
      await server.close();
    }
  },
);
