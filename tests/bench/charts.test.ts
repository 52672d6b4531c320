import assert from "node:assert/strict";
import {
  barChart,
  escapeXml,
  linearScale,
  lineChart,
  logScale,
  plotArea,
} from "../../bench/_charts.ts";
import { charts } from "../../bench/_report.ts";

/**
 * Checks that `svg` is well-formed XML as far as the charts use it: every element closed in
 * order, attributes quoted, no raw `<` or `&` in text; returns the elements' names.
 */
function wellFormed(svg: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = svg.indexOf("<");
  assert.match(svg.slice(0, i), /^\s*$/, "text before the root element");
  while (i < svg.length) {
    if (svg[i] === "<") {
      tag.lastIndex = i;
      const m = tag.exec(svg);
      assert(m, `malformed tag at ${i}: ${svg.slice(i, i + 60)}`);
      const [whole, closing, name, , selfClosing] = m;
      if (closing) assert.equal(stack.pop(), name, `</${name}> closes another element`);
      else {
        names.push(name);
        if (!selfClosing) stack.push(name);
      }
      i += whole.length;
    } else {
      const next = svg.indexOf("<", i);
      const text = svg.slice(i, next === -1 ? svg.length : next);
      assert.doesNotMatch(text, /&(?!(amp|lt|gt|quot|apos|#\d+);)/, `raw & in "${text}"`);
      assert.doesNotMatch(text, />/, `raw > in "${text}"`);
      if (next === -1) assert.match(text, /^\s*$/, "text after the root element");
      i = next === -1 ? svg.length : next;
    }
  }
  assert.deepEqual(stack, [], "elements left open");
  assert.equal(names[0], "svg");
  return names;
}

const attr = (element: string, name: string) =>
  Number(new RegExp(`\\s${name}="([^"]*)"`).exec(element)?.[1]);

Deno.test("linear and log scales grow with the value and end on round ticks", () => {
  const lin = linearScale([1000, 58_122], [70, 470]);
  assert.deepEqual(lin.domain, [0, 60_000]);
  assert.deepEqual(lin.ticks, [0, 20_000, 40_000, 60_000]);
  const log = logScale([6.28, 4161], [310, 40]);
  assert.deepEqual(log.domain, [1, 10_000]);
  assert.deepEqual(log.ticks, [1, 10, 100, 1000, 10_000]);
  for (
    const [scale, values] of [[lin, [0, 1, 999, 1000, 30_000, 60_000]], [log, [
      1,
      2,
      9,
      10,
      4161,
    ]]] as const
  ) {
    const pixels = values.map((v) => scale(v));
    const [r0, r1] = scale.range;
    const sign = Math.sign(r1 - r0);
    for (let k = 1; k < pixels.length; k++) {
      assert(sign * (pixels[k] - pixels[k - 1]) > 0, `not monotonic at ${values[k]}`);
    }
    assert.equal(scale(scale.domain[0]), r0);
    assert.equal(scale(scale.domain[1]), r1);
  }
  assert.equal(log(100), (310 + 40) / 2 + 0, "10² is half way between 10⁰ and 10⁴");
  assert.throws(() => logScale([0, 10], [0, 1]), /positive values, not "0"/);
});

Deno.test("a line chart puts each point where its scales say", () => {
  const svg = lineChart({
    title: "Deliveries & <friends>",
    xLabel: "users",
    yLabel: "deliveries/s",
    series: [
      { name: "relais", points: [{ x: 0, y: 0 }, { x: 10, y: 100 }, { x: 5, y: 50 }] },
      { name: "goal", dashed: true, points: [{ x: 10, y: 80 }] },
    ],
  });
  const names = wellFormed(svg);
  assert(names.includes("polyline") && names.includes("circle"));
  assert(svg.includes(escapeXml("Deliveries & <friends>")));
  const area = plotArea(640, 360);
  const plot = /<rect class="plot"[^>]*>/.exec(svg)![0];
  assert.equal(attr(plot, "x"), area.left);
  assert.equal(attr(plot, "y"), area.top);
  // (5, 50) on axes from 0 to 10 and 0 to 100: the middle of the plot area.
  const mid = /<circle data-series="relais" data-x="5" data-y="50"[^>]*>/.exec(svg)![0];
  assert.equal(attr(mid, "cx"), (area.left + area.right) / 2);
  assert.equal(attr(mid, "cy"), (area.top + area.bottom) / 2);
  // The top right corner for (10, 100); the polyline runs through the points by x.
  const top = /<circle data-series="relais" data-x="10" data-y="100"[^>]*>/.exec(svg)![0];
  assert.equal(attr(top, "cx"), area.right);
  assert.equal(attr(top, "cy"), area.top);
  assert.match(
    svg,
    new RegExp(
      `points="${area.left},${area.bottom} ${(area.left + area.right) / 2},${
        (area.top + area.bottom) / 2
      } ${area.right},${area.top}"`,
    ),
  );
  // A lone point gets a marker and no line; the dashed series shows dashed in the legend.
  assert.doesNotMatch(svg, /<polyline data-series="goal"/);
  assert.match(svg, /stroke-dasharray="5 3"\/>\n<text[^>]*>goal<\/text>/);
});

Deno.test("a bar chart's bars start at 0 and are as tall as their value", () => {
  const svg = barChart({
    title: "RSS",
    xLabel: "users",
    yLabel: "KB",
    groups: ["1,000", "10,000"],
    series: [{ name: "relais", values: [20, 40] }, { name: "bare", values: [undefined, 10] }],
  });
  wellFormed(svg);
  const area = plotArea(640, 360);
  const bars = [...svg.matchAll(/<rect data-series="[^"]*" data-group="[^"]*"[^>]*>/g)].map((m) =>
    m[0]
  );
  assert.equal(bars.length, 3, "a missing value draws no bar");
  const height = (series: string, group: string) => {
    const bar = bars.find((b) => b.includes(`data-series="${series}" data-group="${group}"`))!;
    assert.equal(attr(bar, "y") + attr(bar, "height"), area.bottom, "a bar stands on the axis");
    return attr(bar, "height");
  };
  // The axis runs from 0 to 40: 40 fills the plot, 20 half of it, 10 a quarter.
  assert.equal(height("relais", "10,000"), area.bottom - area.top);
  assert.equal(height("relais", "1,000"), (area.bottom - area.top) / 2);
  assert.equal(height("bare", "10,000"), (area.bottom - area.top) / 4);
});

Deno.test("the report draws its three charts from the saved results", async () => {
  const saved = JSON.parse(
    await Deno.readTextFile(new URL("../../docs/benchmarks.json", import.meta.url)),
  );
  const drawn = charts(saved.results);
  assert.deepEqual(drawn.map((c) => c.file).sort(), [
    "bench-fanout.svg",
    "bench-idle.svg",
    "bench-latency.svg",
  ]);
  for (const chart of drawn) wellFormed(chart.svg);
  const fanout = drawn.find((c) => c.file === "bench-fanout.svg")!.svg;
  for (const name of ["relais REALTIME", "bare WebSocket", "Socket.IO"]) {
    assert.match(fanout, new RegExp(`<polyline data-series="${name}"`));
  }
  assert.deepEqual(charts({ fanout: { error: "boom" } }), [], "a failed scenario has no chart");
});
