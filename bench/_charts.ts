/**
 * Small SVG charts for the bench report, written by hand: no dependency, no script, no
 * external font, a white background (readable in GitHub's light and dark themes, which show
 * an SVG as an image).
 *
 * {@linkcode lineChart} draws series of points on linear or logarithmic axes;
 * {@linkcode barChart} draws grouped bars. Both return the SVG document as a string.
 */

/** A position on the chart, in data units. */
export interface Point {
  x: number;
  y: number;
}

/** A named line of points. */
export interface Series {
  name: string;
  points: Point[];
  /** Drawn dashed (a goal, a reference). */
  dashed?: boolean;
}

/** How an axis maps values: evenly, or by powers of ten. */
export type ScaleKind = "linear" | "log";

/** A map from data values to pixels, with the values worth a tick. */
export interface Scale {
  (value: number): number;
  kind: ScaleKind;
  /** The values at both ends of the axis (rounded out to ticks). */
  domain: [number, number];
  /** The pixels both ends of the domain land on. */
  range: [number, number];
  ticks: number[];
}

/** 1, 2 or 5 times a power of ten, the closest at or above `step`. */
function niceStep(step: number): number {
  const power = 10 ** Math.floor(Math.log10(step));
  const f = step / power;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
}

/** Rounds away the float noise of tick arithmetic (0.30000000000000004 → 0.3). */
const clean = (n: number) => Number(n.toPrecision(12));

/**
 * A linear scale over `[min, max]` of the data, widened to round ticks (about `count` of
 * them); `min` is taken down to 0 when `zero` is set and the data is positive.
 */
export function linearScale(
  data: [number, number],
  range: [number, number],
  options: { count?: number; zero?: boolean } = {},
): Scale {
  let [min, max] = data;
  if (options.zero !== false) min = Math.min(0, min);
  if (!(max > min)) max = min + 1;
  const step = niceStep((max - min) / (options.count ?? 5));
  const lo = clean(Math.floor(min / step) * step);
  const hi = clean(Math.ceil(max / step) * step);
  const ticks: number[] = [];
  for (let t = lo; t <= hi + step / 2; t += step) ticks.push(clean(t));
  const [r0, r1] = range;
  const scale = (v: number) => r0 + ((v - lo) / (hi - lo)) * (r1 - r0);
  return Object.assign(scale, {
    kind: "linear" as const,
    domain: [lo, hi] as [number, number],
    range,
    ticks,
  });
}

/**
 * A logarithmic scale over `[min, max]` of the (positive) data, widened to powers of ten;
 * ticks at 1, 2 and 5 times each power (only the powers past three decades).
 */
export function logScale(data: [number, number], range: [number, number]): Scale {
  const [min, max] = data;
  if (!(min > 0)) throw new Error(`A log scale needs positive values, not "${min}"`);
  const lo = Math.floor(Math.log10(min));
  let hi = Math.ceil(Math.log10(max));
  if (hi === lo) hi = lo + 1;
  const steps = hi - lo > 3 ? [1] : [1, 2, 5];
  const ticks: number[] = [];
  for (let p = lo; p <= hi; p++) {
    for (const s of steps) if (p < hi || s === 1) ticks.push(clean(s * 10 ** p));
  }
  const [r0, r1] = range;
  const scale = (v: number) => r0 + ((Math.log10(v) - lo) / (hi - lo)) * (r1 - r0);
  return Object.assign(scale, {
    kind: "log" as const,
    domain: [10 ** lo, 10 ** hi] as [number, number],
    range,
    ticks,
  });
}

/** "1.5k", "20k", "2M", "0.25": short tick labels. */
export function compact(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${clean(n / 1e6)}M`;
  if (abs >= 1e3) return `${clean(n / 1e3)}k`;
  return String(clean(n));
}

/** Escapes text and attribute values for XML. */
export function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos" }[c]};`,
  );
}

/** Colour-blind-safe colours (Okabe and Ito), one per series in order. */
export const PALETTE = [
  "#0072B2",
  "#E69F00",
  "#009E73",
  "#CC79A7",
  "#D55E00",
  "#56B4E9",
  "#000000",
];

const px = (n: number) => String(Math.round(n * 10) / 10);

/** What both kinds of chart share: size, title, axis labels. */
interface Frame {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
}

const MARGIN = { top: 40, right: 170, bottom: 50, left: 70 };

/**
 * The plot area of a chart of that size, in pixels; `right` is the room kept for the legend
 * on the right.
 */
export function plotArea(width: number, height: number, right = MARGIN.right) {
  return {
    left: MARGIN.left,
    top: MARGIN.top,
    right: width - right,
    bottom: height - MARGIN.bottom,
  };
}

/** About how wide `text` is in the charts' 12 px sans-serif (capitals are wider). */
export function textWidth(text: string): number {
  let w = 0;
  for (const c of text) w += c === " " ? 3.5 : c !== c.toLowerCase() ? 7.5 : 6;
  return w;
}

/**
 * A chart's size with room for its legend: a legend name too long for the default margin
 * widens the chart (the plot area keeps its size) rather than running off its edge.
 */
function layout(frame: Frame, names: string[]) {
  // Swatch and gap (16 + 28), the longest name, a little air.
  const right = Math.max(
    MARGIN.right,
    Math.ceil(44 + Math.max(0, ...names.map(textWidth)) + 8),
  );
  const width = (frame.width ?? 640) + right - MARGIN.right;
  const height = frame.height ?? 360;
  return { width, height, right, area: plotArea(width, height, right) };
}

function open(frame: Frame, width: number, height: number, right: number): string[] {
  const area = plotArea(width, height, right);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="12" role="img" aria-label="${
      escapeXml(frame.title)
    }">`,
    `<title>${escapeXml(frame.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${px(area.left)}" y="22" font-size="14" font-weight="bold" fill="#24292f">${
      escapeXml(frame.title)
    }</text>`,
    `<rect class="plot" x="${px(area.left)}" y="${px(area.top)}" width="${
      px(area.right - area.left)
    }" height="${px(area.bottom - area.top)}" fill="none" stroke="#d0d7de"/>`,
    `<text x="${px((area.left + area.right) / 2)}" y="${
      px(height - 12)
    }" text-anchor="middle" fill="#24292f">${escapeXml(frame.xLabel)}</text>`,
    `<text transform="translate(16 ${
      px((area.top + area.bottom) / 2)
    }) rotate(-90)" text-anchor="middle" fill="#24292f">${escapeXml(frame.yLabel)}</text>`,
  ];
}

function yAxis(y: Scale, area: ReturnType<typeof plotArea>, format: (n: number) => string) {
  return y.ticks.flatMap((t) => {
    const at = px(y(t));
    return [
      `<line x1="${px(area.left)}" y1="${at}" x2="${px(area.right)}" y2="${at}" stroke="#eaeef2"/>`,
      `<text x="${px(area.left - 6)}" y="${at}" dy="0.32em" text-anchor="end" fill="#57606a">${
        escapeXml(format(t))
      }</text>`,
    ];
  });
}

function legend(
  items: { name: string; color: string; dashed?: boolean }[],
  width: number,
  right: number,
  swatch: "line" | "square",
) {
  const x = width - right + 16;
  return items.flatMap((item, i) => {
    const y = MARGIN.top + 8 + i * 20;
    const mark = swatch === "square"
      ? `<rect x="${x + 5}" y="${y - 6}" width="12" height="12" fill="${item.color}"/>`
      : `<line x1="${x}" y1="${y}" x2="${
        x + 22
      }" y2="${y}" stroke="${item.color}" stroke-width="3"${
        item.dashed ? ' stroke-dasharray="5 3"' : ""
      }/>`;
    return [
      mark,
      `<text x="${x + 28}" y="${y}" dy="0.32em" fill="#24292f">${escapeXml(item.name)}</text>`,
    ];
  });
}

/** What {@linkcode lineChart} draws. */
export interface LineChartInput extends Frame {
  series: Series[];
  x?: ScaleKind;
  y?: ScaleKind;
  formatX?: (n: number) => string;
  formatY?: (n: number) => string;
}

/** The scales a line chart of that input uses (exported for tests). */
export function lineScales(input: LineChartInput): { x: Scale; y: Scale } {
  const { area } = layout(input, input.series.map((s) => s.name));
  const points = input.series.flatMap((s) => s.points).filter((p) =>
    Number.isFinite(p.x) && Number.isFinite(p.y) &&
    (input.x !== "log" || p.x > 0) && (input.y !== "log" || p.y > 0)
  );
  if (!points.length) throw new Error(`Chart "${input.title}" has no point to draw`);
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const xData: [number, number] = [Math.min(...xs), Math.max(...xs)];
  const yData: [number, number] = [Math.min(...ys), Math.max(...ys)];
  return {
    x: input.x === "log"
      ? logScale(xData, [area.left, area.right])
      : linearScale(xData, [area.left, area.right]),
    // Pixels grow downwards: the domain's low end is the plot's bottom.
    y: input.y === "log"
      ? logScale(yData, [area.bottom, area.top])
      : linearScale(yData, [area.bottom, area.top]),
  };
}

/** A line chart: one polyline with point markers per series, axes, grid and legend. */
export function lineChart(input: LineChartInput): string {
  const { width, height, right, area } = layout(input, input.series.map((s) => s.name));
  const { x, y } = lineScales(input);
  const formatX = input.formatX ?? compact;
  const formatY = input.formatY ?? compact;
  const out = open(input, width, height, right);
  out.push(...yAxis(y, area, formatY));
  for (const t of x.ticks) {
    const at = px(x(t));
    out.push(
      `<line x1="${at}" y1="${px(area.bottom)}" x2="${at}" y2="${
        px(area.bottom + 5)
      }" stroke="#57606a"/>`,
      `<text x="${at}" y="${px(area.bottom + 18)}" text-anchor="middle" fill="#57606a">${
        escapeXml(formatX(t))
      }</text>`,
    );
  }
  input.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = s.points.filter((p) =>
      Number.isFinite(p.x) && Number.isFinite(p.y) &&
      (x.kind !== "log" || p.x > 0) && (y.kind !== "log" || p.y > 0)
    ).sort((a, b) => a.x - b.x);
    const name = escapeXml(s.name);
    if (pts.length > 1) {
      out.push(
        `<polyline data-series="${name}" points="${
          pts.map((p) => `${px(x(p.x))},${px(y(p.y))}`).join(" ")
        }" fill="none" stroke="${color}" stroke-width="2"${
          s.dashed ? ' stroke-dasharray="6 4"' : ""
        } stroke-linejoin="round"/>`,
      );
    }
    for (const p of pts) {
      out.push(
        `<circle data-series="${name}" data-x="${p.x}" data-y="${p.y}" cx="${px(x(p.x))}" cy="${
          px(y(p.y))
        }" r="3.5" fill="${
          s.dashed ? "#ffffff" : color
        }" stroke="${color}" stroke-width="1.5"><title>${name}: ${escapeXml(formatY(p.y))} at ${
          escapeXml(formatX(p.x))
        }</title></circle>`,
      );
    }
  });
  out.push(
    ...legend(
      input.series.map((s, i) => ({
        name: s.name,
        color: PALETTE[i % PALETTE.length],
        dashed: s.dashed,
      })),
      width,
      right,
      "line",
    ),
  );
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** What {@linkcode barChart} draws: one group of bars per label, one bar per series. */
export interface BarChartInput extends Frame {
  groups: string[];
  series: { name: string; values: (number | undefined)[] }[];
  formatY?: (n: number) => string;
}

/** A grouped bar chart from 0, with each bar's value above it. */
export function barChart(input: BarChartInput): string {
  const { width, height, right, area } = layout(input, input.series.map((s) => s.name));
  const values = input.series.flatMap((s) => s.values).filter((v): v is number =>
    typeof v === "number" && Number.isFinite(v)
  );
  if (!values.length) throw new Error(`Chart "${input.title}" has no bar to draw`);
  const y = linearScale([0, Math.max(...values)], [area.bottom, area.top]);
  const formatY = input.formatY ?? compact;
  const out = open(input, width, height, right);
  out.push(...yAxis(y, area, formatY));
  const slot = (area.right - area.left) / input.groups.length;
  const bar = (slot * 0.7) / input.series.length;
  input.groups.forEach((group, g) => {
    const x0 = area.left + g * slot + slot * 0.15;
    out.push(
      `<text x="${px(area.left + (g + 0.5) * slot)}" y="${
        px(area.bottom + 18)
      }" text-anchor="middle" fill="#57606a">${escapeXml(group)}</text>`,
    );
    input.series.forEach((s, i) => {
      const v = s.values[g];
      if (typeof v !== "number" || !Number.isFinite(v)) return;
      const top = y(v);
      const x = x0 + i * bar;
      out.push(
        `<rect data-series="${escapeXml(s.name)}" data-group="${escapeXml(group)}" x="${
          px(x)
        }" y="${px(top)}" width="${px(bar - 2)}" height="${px(area.bottom - top)}" fill="${
          PALETTE[i % PALETTE.length]
        }"><title>${escapeXml(s.name)}, ${escapeXml(group)}: ${
          escapeXml(formatY(v))
        }</title></rect>`,
        `<text x="${px(x + (bar - 2) / 2)}" y="${
          px(top - 4)
        }" text-anchor="middle" fill="#24292f">${escapeXml(formatY(v))}</text>`,
      );
    });
  });
  out.push(
    ...legend(
      input.series.map((s, i) => ({ name: s.name, color: PALETTE[i % PALETTE.length] })),
      width,
      right,
      "square",
    ),
  );
  out.push("</svg>");
  return out.join("\n") + "\n";
}
