/**
 * Just enough of PromQL and of a Prometheus rules file to list the metrics they query:
 * no YAML or PromQL library is a dependency, and `promtool` checks the real syntax.
 */

/** One rule of a rules file: its name, PromQL and scalar fields (`for`, labels, annotations). */
export interface Rule {
  kind: "alert" | "record";
  name: string;
  expr: string;
  /** Every `key: value` under the rule, nested keys by their own name (`severity`, `summary`). */
  fields: Map<string, string>;
}

const unquote = (value: string): string =>
  /^".*"$/.test(value) ? JSON.parse(value) : /^'.*'$/.test(value) ? value.slice(1, -1) : value;

/**
 * Reads the rules of a Prometheus rules file written in block style: each rule starts with
 * `- alert:` or `- record:`; values are plain, quoted, or `|` / `>-` blocks.
 */
export function parseRules(yaml: string): Rule[] {
  const lines = yaml.split("\n");
  const rules: Rule[] = [];
  let current: Rule | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^\s*(#.*)?$/.test(line)) continue;
    const start = /^\s*- (alert|record): (.+)$/.exec(line);
    if (start) {
      current = {
        kind: start[1] as Rule["kind"],
        name: unquote(start[2].trim()),
        expr: "",
        fields: new Map(),
      };
      rules.push(current);
      continue;
    }
    if (/^\s*- /.test(line)) current = undefined; // another list: a group
    const field = /^(\s*)([\w-]+):\s*(.*)$/.exec(line);
    if (!current || !field) continue;
    const [, indent, key, raw] = field;
    let value = raw.trim();
    if (/^[|>]-?$/.test(value)) {
      const block: string[] = [];
      while (i + 1 < lines.length) {
        const next = lines[i + 1];
        if (next.trim() !== "" && next.search(/\S/) <= indent.length) break;
        block.push(next.trim());
        i++;
      }
      value = block.join(value.startsWith("|") ? "\n" : " ").trim();
    } else value = unquote(value);
    if (key === "expr") current.expr = value;
    else current.fields.set(key, value);
  }
  return rules;
}

// Strings, label matchers, ranges, grouping clauses, numbers and durations, Grafana
// variables, and names (a name followed by "(" is a function or an aggregation).
const TOKENS = new RegExp(
  [
    String.raw`"(?:[^"\\]|\\.)*"`,
    String.raw`'(?:[^'\\]|\\.)*'`,
    "`[^`]*`",
    String.raw`\{[^}]*\}`,
    String.raw`\[[^\]]*\]`,
    String.raw`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`,
    String.raw`\d[\w.]*`,
    String.raw`\$\{?\w+\}?`,
    String.raw`([a-zA-Z_:][\w:]*)(\s*\()?`,
  ].join("|"),
  "g",
);

// Operators, and the aggregations, which may take their grouping before the parenthesis.
const KEYWORDS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "group_left",
  "group_right",
  "inf",
  "nan",
]);

/** The metric names (recording rules' names included) a PromQL expression selects. */
export function metricNames(expr: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, call] of expr.matchAll(TOKENS)) {
    if (name === undefined || call !== undefined) continue;
    if (KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return names;
}
