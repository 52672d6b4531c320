/// <reference lib="dom" />
/**
 * The ops page's charts: the last 15 minutes of `GET /v1/admin/metrics/history`, drawn
 * with uPlot (bundled with this script; its stylesheet is `/assets/charts.css`).
 *
 * Each figure also carries its latest and highest values as `data-last-<field>` and
 * `data-max-<field>`, and says the latest ones in its caption: a canvas says nothing to a
 * screen reader.
 */

import uPlot from "uplot";
import { $ } from "./_dom.ts";
import type { Key } from "./i18n.ts";
import { type ChartDef, CHARTS, type SeriesDef } from "./ops_sections.ts";

/** One point of the history, as the server sends it. */
export type HistoryPoint = { t: number } & Record<SeriesDef["field"], number | null>;

/** What `GET /v1/admin/metrics/history` answers. */
export interface History {
  interval_ms: number;
  window_ms: number;
  ingest: boolean;
  points: HistoryPoint[];
}

type Translate = (key: Key) => string;

const HEIGHT = 170;
const plots = new Map<string, uPlot>();
let last: History | undefined;

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function format(value: number | null | undefined, lang: string): string {
  if (value === null || value === undefined) return "—";
  return value.toLocaleString(lang, { maximumFractionDigits: value < 10 ? 2 : 0 });
}

function options(chart: ChartDef, width: number, t: Translate, lang: string): uPlot.Options {
  const text = cssVar("--muted", "#5b6470");
  const grid = { stroke: cssVar("--line", "#d8dde3"), width: 1 };
  const right = chart.series.some((s) => s.right);
  return {
    width,
    height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: {
      x: { time: true },
      // Counts and rates start at zero, and a flat zero line still shows a scale.
      y: { range: (_u, _min, max) => [0, Math.max(1, max ?? 1) * 1.1] },
      ...(right ? { state: { range: [0, 2] as uPlot.Range.MinMax } } : {}),
    },
    axes: [
      { stroke: text, grid, ticks: grid },
      { stroke: text, grid, ticks: grid, size: 50 },
      ...(right
        ? [{ scale: "state", side: 1 as const, stroke: text, grid: { show: false }, size: 30 }]
        : []),
    ],
    series: [
      {},
      ...chart.series.map((s) => ({
        label: t(s.label),
        stroke: s.color,
        width: 1.5,
        scale: s.right ? "state" : "y",
        // A latency is null over an interval without sends: the line goes on across it.
        spanGaps: true,
        value: (_u: uPlot, v: number | null) => format(v, lang),
      })),
    ],
  };
}

function annotate(
  figure: HTMLElement,
  chart: ChartDef,
  history: History,
  t: Translate,
  lang: string,
) {
  const parts: string[] = [];
  for (const s of chart.series) {
    const values = history.points.map((p) => p[s.field]).filter((v): v is number => v !== null);
    const latest = history.points.at(-1)?.[s.field] ?? null;
    figure.dataset[`last_${s.field}`] = latest === null ? "" : String(latest);
    figure.dataset[`max_${s.field}`] = String(values.length ? Math.max(...values) : 0);
    parts.push(`${t(s.label)} ${format(latest, lang)}`);
  }
  figure.dataset.points = String(history.points.length);
  figure.querySelector(".chart-now")!.textContent = parts.join(" · ");
}

/** Draws `history` (the first call builds the charts, later ones update them). */
export function showCharts(history: History, t: Translate, lang: string): void {
  last = history;
  const xs = history.points.map((p) => p.t / 1000);
  for (const chart of CHARTS) {
    const figure = $(`chart-${chart.id}`);
    figure.hidden = chart.ingestOnly === true && !history.ingest;
    if (figure.hidden) continue;
    annotate(figure, chart, history, t, lang);
    const data: uPlot.AlignedData = [
      xs,
      ...chart.series.map((s) => history.points.map((p) => p[s.field])),
    ];
    const plot = plots.get(chart.id);
    if (plot) {
      plot.setData(data);
      continue;
    }
    const target = figure.querySelector<HTMLElement>(".chart-plot")!;
    const width = Math.max(240, target.clientWidth || 480);
    plots.set(chart.id, new uPlot(options(chart, width, t, lang), data, target));
  }
}

/** Rebuilds the charts (the language changed): their legends are drawn once. */
export function redrawCharts(t: Translate, lang: string): void {
  for (const plot of plots.values()) plot.destroy();
  plots.clear();
  if (last) showCharts(last, t, lang);
}

addEventListener("resize", () => {
  for (const [id, plot] of plots) {
    const width = document.querySelector<HTMLElement>(`#chart-${id} .chart-plot`)?.clientWidth;
    if (width) plot.setSize({ width: Math.max(240, width), height: HEIGHT });
  }
});
