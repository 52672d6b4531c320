/**
 * The ops page's charts and lookup cards: their HTML, and the charts' definitions the
 * page script draws from. Shared by the page module (server) and the page script
 * (browser): no DOM here.
 */

import type { Key } from "./i18n.ts";

/** A series of a chart: a field of the history's points. */
export interface SeriesDef {
  field:
    | "ws"
    | "sse"
    | "poll"
    | "deliveries_per_s"
    | "p50_ms"
    | "p99_ms"
    | "redeliveries_per_s"
    | "dead_letters_per_s"
    | "mail_depth"
    | "breaker"
    | "ingest_lag";
  label: Key;
  color: string;
  /** Drawn against the right-hand scale (the breaker's 0–2). */
  right?: boolean;
}

/** One chart of the ops page. */
export interface ChartDef {
  id: string;
  title: Key;
  series: SeriesDef[];
  /** Shown only when the ingest is on. */
  ingestOnly?: boolean;
}

/** The charts, in page order. */
export const CHARTS: readonly ChartDef[] = [
  {
    id: "connections",
    title: "chart.connections",
    series: [
      { field: "ws", label: "chart.ws", color: "#1f5fbf" },
      { field: "sse", label: "chart.sse", color: "#1a7f37" },
      { field: "poll", label: "chart.poll", color: "#9a6700" },
    ],
  },
  {
    id: "deliveries",
    title: "chart.deliveries",
    series: [{ field: "deliveries_per_s", label: "chart.deliveriesPerS", color: "#1f5fbf" }],
  },
  {
    id: "latency",
    title: "chart.latency",
    series: [
      { field: "p50_ms", label: "chart.p50", color: "#1a7f37" },
      { field: "p99_ms", label: "chart.p99", color: "#c62828" },
    ],
  },
  {
    id: "retries",
    title: "chart.retries",
    series: [
      { field: "redeliveries_per_s", label: "chart.redeliveries", color: "#9a6700" },
      { field: "dead_letters_per_s", label: "chart.deadLetters", color: "#c62828" },
    ],
  },
  {
    id: "mail",
    title: "chart.mail",
    series: [
      { field: "mail_depth", label: "chart.mailDepth", color: "#1f5fbf" },
      { field: "breaker", label: "chart.breaker", color: "#c62828", right: true },
    ],
  },
  {
    id: "ingest-lag",
    title: "chart.ingestLag",
    series: [{ field: "ingest_lag", label: "chart.ingestLag", color: "#6f42c1" }],
    ingestOnly: true,
  },
];

/** The charts card: one figure per chart, drawn by the page script. */
export function opsChartsSection(): string {
  const figures = CHARTS.map((chart) =>
    `<figure class="chart" id="chart-${chart.id}" data-chart="${chart.id}"${
      chart.ingestOnly ? " hidden" : ""
    }>
        <figcaption><span data-i18n="${chart.title}"></span> <span class="meta chart-now" aria-live="off"></span></figcaption>
        <div class="chart-plot" role="img" data-i18n-aria-label="${chart.title}"></div>
      </figure>`
  ).join("\n      ");
  return `  <section class="card wide" id="charts" aria-labelledby="charts-title" hidden>
    <h2 id="charts-title" data-i18n="ops.charts"></h2>
    <p class="meta" data-i18n="ops.chartsHelp"></p>
    <div class="charts">
      ${figures}
    </div>
  </section>`;
}

/** The lookup card: a user, an event or a conversation, and the actions on a user. */
export function opsLookupSection(): string {
  return `  <section class="card wide" id="lookup" aria-labelledby="lookup-title" hidden>
    <h2 id="lookup-title" data-i18n="ops.lookup"></h2>
    <form id="lookup-form" class="row">
      <label for="lookup-kind" data-i18n="ops.kind"></label>
      <select id="lookup-kind">
        <option value="user" data-i18n="lookup.user"></option>
        <option value="event" data-i18n="lookup.event"></option>
        <option value="conversation" data-i18n="lookup.conversation"></option>
      </select>
      <label for="lookup-id" data-i18n="ops.id"></label>
      <input id="lookup-id" required maxlength="200" autocomplete="off" spellcheck="false" size="36">
      <button type="submit" class="primary" data-i18n="lookup.search"></button>
    </form>
    <p class="error" id="lookup-error" role="alert" hidden></p>
    <p class="status" id="lookup-status" role="status" aria-live="polite"></p>
    <div id="lookup-result" hidden></div>
  </section>`;
}
