/**
 * The operator's files: `docs/prometheus-rules.yml` passes `promtool check rules` and its
 * unit tests (`prometheus-rules.test.yml`), and every metric the rules and
 * `docs/grafana-dashboard.json` query is one a real relais exports on `/metrics`.
 */

import assert from "node:assert/strict";
import { installed, skipUnless } from "../_support/requirements.ts";
import { SERVICE_KEY, startServer } from "../_support/server.ts";
import { metricNames, parseRules } from "./promql.ts";

const ROOT = new URL("../../", import.meta.url);
const RULES = "docs/prometheus-rules.yml";
const RULE_TESTS = "tests/ops/prometheus-rules.test.yml";
const DASHBOARD = "docs/grafana-dashboard.json";

/** The program that checks the rules; `RELAIS_TEST_PROMTOOL` names another one. */
const PROMTOOL = Deno.env.get("RELAIS_TEST_PROMTOOL") || "promtool";

const ignorePromtool = skipUnless(installed(PROMTOOL), {
  tests: "the Prometheus rules checks",
  missing: `"${PROMTOOL}" is not installed`,
  install: "apt-get install -y prometheus",
});

async function promtool(...args: string[]): Promise<{ ok: boolean; output: string }> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(PROMTOOL, { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
      .output();
  } catch (error) {
    throw new Error(`Cannot run "${PROMTOOL}": install it (apt-get install -y prometheus)`, {
      cause: error,
    });
  }
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { ok: out.success, output: decode(out.stdout) + decode(out.stderr) };
}

const rulesText = await Deno.readTextFile(new URL(RULES, ROOT));
const rules = parseRules(rulesText);
// deno-lint-ignore no-explicit-any
const dashboard: any = JSON.parse(await Deno.readTextFile(new URL(DASHBOARD, ROOT)));

/** Every panel, rows' nested panels included. */
// deno-lint-ignore no-explicit-any
function allPanels(): any[] {
  // deno-lint-ignore no-explicit-any
  return dashboard.panels.flatMap((p: any) => [p, ...(p.panels ?? [])]);
}

/** The PromQL of every dashboard query, with where it comes from. */
function dashboardQueries(): { where: string; expr: string }[] {
  const queries = allPanels().flatMap((p) =>
    // deno-lint-ignore no-explicit-any
    (p.targets ?? []).map((t: any) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr }))
  );
  for (const v of dashboard.templating.list) {
    const query = typeof v.query === "string" ? v.query : v.query?.query;
    // label_values(<series selector>, <label>): only the selector is PromQL.
    const selector = /^label_values\((.*),\s*\w+\)$/.exec(query ?? "")?.[1];
    assert(selector, `variable "${v.name}" is not a label_values() query: ${query}`);
    queries.push({ where: `variable "${v.name}"`, expr: selector });
  }
  return queries;
}

Deno.test("metricNames lists the selected metrics and no function, label or keyword", () => {
  assert.deepEqual(
    [
      ...metricNames(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"$job", x="y(z)"}[$__rate_interval])))' +
          " / on (job) group_left sum without (instance) (b:c:rate5m offset 5m) > bool 1e3" +
          ' and absent(up{job="relais"} == 1) or max(d) by (kind)',
      ),
    ],
    ["a_bucket", "b:c:rate5m", "up", "d"],
  );
});

Deno.test({
  name: "promtool check rules accepts docs/prometheus-rules.yml and counts every rule",
  ignore: ignorePromtool,
  async fn() {
    const { ok, output } = await promtool("check", "rules", RULES);
    assert(ok, output);
    assert.match(output, new RegExp(`SUCCESS: ${rules.length} rules found`), output);
  },
});

Deno.test({
  name: "the alerts fire on the series of their unit tests and stay quiet before",
  ignore: ignorePromtool,
  async fn() {
    const { ok, output } = await promtool("test", "rules", RULE_TESTS);
    assert(ok, output);
    assert.match(output, /SUCCESS/);
  },
});

Deno.test("every alert has a for, a severity, a summary and a description", () => {
  const alerts = rules.filter((r) => r.kind === "alert");
  const names = alerts.map((a) => a.name);
  for (
    const expected of [
      "RelaisNodeDown",
      "RelaisHttp5xxRatioHigh",
      "RelaisDeadLettersRising",
      "RelaisPublishToSendP99OverBudget",
      "RelaisIngestLagGrowing",
    ]
  ) assert(names.includes(expected), `no alert "${expected}" in ${RULES}`);
  for (const a of alerts) {
    assert.match(a.fields.get("for") ?? "", /^\d+[smh]$/, `alert "${a.name}" has no for`);
    assert.match(a.fields.get("severity") ?? "", /^(warning|critical)$/, a.name);
    assert(a.fields.get("summary"), `alert "${a.name}" has no summary`);
    assert(a.fields.get("description"), `alert "${a.name}" has no description`);
  }
  assert.match(
    rules.find((r) => r.name === "RelaisNodeDown")!.expr,
    /up\{job="relais"\} == 0/,
  );
});

Deno.test("the dashboard takes its Prometheus as an input and lays out unique panels", () => {
  assert.deepEqual(
    dashboard.__inputs.map((i: { name: string; pluginId: string }) => [i.name, i.pluginId]),
    [["DS_PROMETHEUS", "prometheus"]],
  );
  assert(dashboard.schemaVersion >= 36, "not a Grafana 10 dashboard");
  const panels = allPanels();
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids repeat");
  for (const p of panels) {
    const { x, w } = p.gridPos;
    assert(x >= 0 && w > 0 && x + w <= 24, `panel "${p.title}" is outside the 24 columns`);
    if (p.type === "row") continue;
    assert.equal(p.datasource?.uid, "${DS_PROMETHEUS}", `panel "${p.title}"`);
    assert(p.targets?.length, `panel "${p.title}" has no query`);
    for (const t of p.targets) assert.equal(t.datasource?.uid, "${DS_PROMETHEUS}", p.title);
  }
  const titles = panels.map((p) => String(p.title).toLowerCase()).join("\n");
  for (
    const topic of [
      "connections by transport",
      "deliveries/s",
      "publish → send",
      "redeliveries",
      "dead letters",
      "5xx",
      "actors by kind",
      "ingest lag",
    ]
  ) assert(titles.includes(topic), `no panel about "${topic}"`);
});

Deno.test("every metric the rules and the dashboard query is exported on /metrics", async () => {
  const server = await startServer();
  let text: string;
  try {
    // A publish and a refused request, so the labelled families have series too.
    await server.publish({ metadata: {} });
    await server.request("/v1/events/unknown", { apiKey: SERVICE_KEY });
    const res = await fetch(`${server.origin}/metrics`);
    assert.equal(res.status, 200);
    text = await res.text();
  } finally {
    await server.close();
  }
  const families = new Map<string, string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families.set(name, type);
  assert(families.has("relais_deliveries_total"), "no relais family on /metrics");

  const recorded = new Set(rules.filter((r) => r.kind === "record").map((r) => r.name));
  // Series Prometheus itself writes for each scrape target.
  const synthetic = new Set(["up"]);
  const exported = (name: string): boolean => {
    if (families.has(name) || synthetic.has(name)) return true;
    const family = /^(.+)_(bucket|sum|count)$/.exec(name)?.[1];
    return family !== undefined && ["histogram", "summary"].includes(families.get(family) ?? "");
  };

  const queries = [
    ...rules.map((r) => ({ where: `rule "${r.name}"`, expr: r.expr })),
    ...dashboardQueries(),
  ];
  const seen = new Set<string>();
  const unknown: string[] = [];
  for (const { where, expr } of queries) {
    const names = metricNames(expr);
    assert(names.size > 0, `${where} queries no metric: ${expr}`);
    for (const name of names) {
      seen.add(name);
      const ok = name.includes(":") ? recorded.has(name) : exported(name);
      if (!ok) unknown.push(`${where}: "${name}"`);
    }
  }
  assert.deepEqual(unknown, [], "queried but neither exported nor recorded");
  // The extraction did find what the files are about.
  for (
    const name of [
      "up",
      "relais_connections",
      "relais_deliveries_total",
      "relais_publish_to_deliver_seconds_bucket",
      "relais_dead_letters_total",
      "relais_http_requests_total",
      "relais_ingest_lag",
      "relais_actors",
    ]
  ) assert(seen.has(name), `nothing queries "${name}"`);
});
