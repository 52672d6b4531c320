/// <reference lib="dom" />
/**
 * Measures the SDK in Chromium against a real relais on loopback: for each transport, the
 * time from sending `POST /v1/events` (which answers once the event is durable) to the
 * notification being shown by the demo page, and how long the SDK takes to be connected
 * when WebSocket (and SSE) are blocked.
 *
 * Not a test: `deno run -A tests/browser/measure.ts [samples]` prints the figures.
 */

import { envelope, startServer } from "../_support/server.ts";
import { launch } from "./_browser.ts";

const samples = Number(Deno.args[0] ?? 30);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const server = await startServer();
try {
  for (const transport of ["ws", "sse", "poll"]) {
    const browser = await launch();
    try {
      const { page } = browser;
      await page.goto(`${server.origin}/?user=camille&transports=${transport}`);
      await page.waitForSelector("body[data-ready]", { state: "attached" });
      await page.click("#connect-button");
      await page.waitForSelector(`#status[data-state="open"][data-transport="${transport}"]`);
      const latencies: number[] = [];
      for (let i = 0; i < samples; i++) {
        const title = `${transport} ${i} ${crypto.randomUUID()}`;
        const e = envelope(["camille"], { payload: { fr: { title, body: "" } } });
        const waiting = page.waitForFunction(
          (t) => [...document.querySelectorAll(".item-title")].some((n) => n.textContent === t),
          title,
          { polling: "raf" },
        );
        const started = performance.now();
        await server.publish(e);
        await waiting;
        latencies.push(performance.now() - started);
      }
      console.log(
        `${transport.padEnd(4)} publish → visible in the page: median ${
          percentile(latencies, 50).toFixed(1)
        } ms, p95 ${percentile(latencies, 95).toFixed(1)} ms (${samples} notifications)`,
      );
    } finally {
      await browser.close();
    }
  }

  for (const blocked of [["ws"], ["ws", "sse"]]) {
    const browser = await launch();
    try {
      const { page } = browser;
      await page.routeWebSocket(/\/v1\/ws/, (ws) => ws.close({ code: 1006, reason: "blocked" }));
      if (blocked.includes("sse")) await page.route(/\/v1\/sse/, (r) => r.abort("blockedbyclient"));
      await page.goto(`${server.origin}/?user=yanis`);
      await page.waitForSelector("body[data-ready]", { state: "attached" });
      const started = performance.now();
      await page.click("#connect-button");
      await page.waitForSelector('#status[data-state="open"]', { timeout: 60_000 });
      const on = await page.getAttribute("#status", "data-transport");
      console.log(
        `${blocked.join(" + ")} blocked: open on ${on} after ${
          ((performance.now() - started) / 1000).toFixed(2)
        } s`,
      );
    } finally {
      await browser.close();
    }
  }
} finally {
  await server.close();
}
