import assert from "node:assert/strict";
import { type Variable, VARIABLES } from "../src/config.ts";

/** A row of a README configuration table. */
interface Row {
  variable: string;
  meaning: string;
  default: string;
}

/** The rows of every table in README.md's "## Configuration" section, in order. */
async function readmeRows(): Promise<Row[]> {
  const markdown = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const lines = markdown.split("\n");
  const start = lines.indexOf("## Configuration");
  assert.ok(start >= 0, 'README.md has no "## Configuration" section');
  const end = lines.findIndex((line, i) => i > start && line.startsWith("## "));
  const rows: Row[] = [];
  for (const line of lines.slice(start + 1, end < 0 ? undefined : end)) {
    if (!line.startsWith("|") || /^\|[\s|:-]+\|$/.test(line)) continue;
    const cells = line.slice(1, -1).split("|").map((cell) => cell.trim());
    if (cells[0] === "variable") continue;
    assert.equal(cells.length, 3, `expected "variable | meaning | default": ${line}`);
    const name = /^`([A-Z][A-Z0-9_]*)`$/.exec(cells[0]);
    assert.ok(name, `expected one variable per row, written \`NAME\`: ${cells[0]}`);
    rows.push({ variable: name[1], meaning: cells[1], default: cells[2] });
  }
  return rows;
}

/** The default as the README should say it. */
function documentedDefault(variable: Variable): string {
  return variable.documented ??
    (variable.fallback === undefined ? "unset" : `\`${variable.fallback}\``);
}

const declared: ReadonlyMap<string, Variable> = new Map(Object.entries(VARIABLES));

Deno.test("the README's configuration tables list exactly the variables the schema reads", async () => {
  const listed = (await readmeRows()).map((row) => row.variable);
  assert.ok(listed.length > 0, "the Configuration section has no table rows");
  const duplicates = listed.filter((name, i) => listed.indexOf(name) !== i);
  assert.deepEqual(duplicates, [], "variables listed twice in the README");
  const missing = [...declared.keys()].filter((name) => !listed.includes(name));
  assert.deepEqual(missing, [], "variables the schema reads but the README does not list");
  const unknown = listed.filter((name) => !declared.has(name));
  assert.deepEqual(unknown, [], "variables the README lists but the schema does not read");
});

Deno.test("the README gives each variable the default and meaning the schema declares", async () => {
  for (const row of await readmeRows()) {
    const variable = declared.get(row.variable);
    if (!variable) continue; // Reported by the test above.
    assert.equal(row.default, documentedDefault(variable), `default of ${row.variable}`);
    assert.equal(row.meaning, variable.meaning, `meaning of ${row.variable}`);
  }
});
