/** The OpenAPI document and a self-contained HTML page that lists its operations. */

import { Hono } from "hono";
import type { AppEnv } from "../src/auth/principal.ts";
import { describe } from "../src/openapi.ts";

type JsonObject = Record<string, unknown>;

const METHODS = ["get", "post", "put", "patch", "delete", "head", "options"] as const;

const SECURITY_LABELS: Record<string, string> = {
  user: "User token",
  service: "Service key",
  admin: "Service key with admin scope",
  none: "None",
};

// No external resource may load (the machines are offline, and the page needs none).
const CSP =
  "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/**
 * Creates `GET /openapi.json` (the document `document()` builds, on the first request, once
 * every route is mounted) and `GET /docs` (an HTML page listing every operation by tag,
 * with its security and request schema; no script, no CDN).
 */
export function createDocsRoutes(document: () => object | Promise<object>) {
  let built: Promise<{ json: object; html: string }> | undefined;
  const build = () => {
    built ??= Promise.resolve(document()).then((json) => ({ json, html: renderDocsPage(json) }));
    // A failed build is tried again on the next request.
    built.catch(() => built = undefined);
    return built;
  };
  return new Hono<AppEnv>()
    .get(
      "/openapi.json",
      describe({
        summary: "This API's OpenAPI 3.1 document, generated from the mounted routes",
        tags: ["ops"],
        security: "none",
        responses: { 200: { description: "The document" } },
      }),
      async (c) => c.json((await build()).json),
    )
    .get(
      "/docs",
      describe({
        summary: "This API's reference as an HTML page (no script, nothing from elsewhere)",
        tags: ["ops"],
        security: "none",
        responses: { 200: { description: "HTML" } },
      }),
      async (c) => c.html((await build()).html, 200, { "Content-Security-Policy": CSP }),
    );
}

interface Row {
  method: string;
  path: string;
  operation: JsonObject;
}

/** Renders the docs page of an OpenAPI document; every text taken from it is escaped. */
function renderDocsPage(document: object): string {
  const doc = document as JsonObject;
  const info = asObject(doc.info);
  const title = `${text(info.title) || "API"} ${text(info.version)}`.trim();
  const components = asObject(asObject(doc.components).schemas);

  const byTag = new Map<string, Row[]>();
  for (const tag of asArray(doc.tags)) {
    const name = text(asObject(tag).name);
    if (name) byTag.set(name, []);
  }
  for (const [path, item] of Object.entries(asObject(doc.paths))) {
    for (const method of METHODS) {
      const operation = asObject(asObject(item)[method]);
      if (Object.keys(operation).length === 0) continue;
      const tags = asArray(operation.tags).map(text).filter(Boolean);
      for (const tag of tags.length > 0 ? tags : ["Other"]) {
        const rows = byTag.get(tag) ?? [];
        rows.push({ method, path, operation });
        byTag.set(tag, rows);
      }
    }
  }
  const sections = [...byTag].filter(([, rows]) => rows.length > 0);
  const ids = sections.map(([tag], index) => `tag-${index + 1}-${slug(tag)}`);

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} — HTTP API</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem; color: #1a1a1a; background: #fff; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2rem; }
th, td { border-bottom: 1px solid #ccc; padding: .5rem; text-align: left; vertical-align: top; }
code, pre { font-family: ui-monospace, monospace; font-size: .9em; }
pre { background: #f4f4f4; padding: .5rem; overflow-x: auto; max-width: 40rem; }
.method { font-weight: bold; }
ul { margin: 0; padding-left: 1.2rem; }
a { color: #0645ad; }
a:focus, summary:focus { outline: 2px solid #0645ad; outline-offset: 2px; }
</style>
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
${
    info.description
      ? `<p>${escapeHtml(text(info.description))}</p>\n`
      : ""
  }<p>The machine-readable document: <a href="openapi.json">openapi.json</a> (OpenAPI ${
    escapeHtml(text(doc.openapi))
  }).</p>
<nav aria-label="Sections">
<ul>
${sections.map(([tag], i) => `<li><a href="#${ids[i]}">${escapeHtml(tag)}</a></li>`).join("\n")}
</ul>
</nav>
</header>
<main>
${
    sections.map(([tag, rows], i) =>
      `<section aria-labelledby="${ids[i]}">
<h2 id="${ids[i]}">${escapeHtml(tag)}</h2>
<table>
<thead><tr><th scope="col">Method</th><th scope="col">Path</th><th scope="col">Summary</th><th scope="col">Security</th><th scope="col">Request</th><th scope="col">Responses</th></tr></thead>
<tbody>
${rows.map((row) => renderRow(row, components)).join("\n")}
</tbody>
</table>
</section>`
    ).join("\n")
  }
</main>
</body>
</html>
`;
}

function renderRow({ method, path, operation }: Row, components: JsonObject): string {
  const parameters = asArray(operation.parameters).map(asObject);
  const body = asObject(
    asObject(asObject(asObject(operation.requestBody).content)["application/json"]).schema,
  );
  const request = [
    parameters.length > 0
      ? `<details><summary>Parameters</summary><ul>${
        parameters.map((p) =>
          `<li><code>${escapeHtml(text(p.name))}</code> (${escapeHtml(text(p.in))}${
            p.required === true ? ", required" : ""
          })${p.description ? `: ${escapeHtml(text(p.description))}` : ""}</li>`
        ).join("")
      }</ul></details>`
      : "",
    Object.keys(body).length > 0
      ? `<details><summary>Body JSON schema${
        refName(body) ? ` (${escapeHtml(refName(body))})` : ""
      }</summary><pre><code>${
        escapeHtml(JSON.stringify(resolveRef(body, components), null, 2))
      }</code></pre></details>`
      : "",
  ].filter(Boolean).join("\n") || "—";
  const responses = Object.entries(asObject(operation.responses)).map(([status, response]) =>
    `<li>${escapeHtml(status)}: ${escapeHtml(text(asObject(response).description))}</li>`
  ).join("");
  return `<tr>
<td class="method">${escapeHtml(method.toUpperCase())}</td>
<td><code>${escapeHtml(path)}</code></td>
<td>${escapeHtml(text(operation.summary))}${
    operation.description ? `<br>${escapeHtml(text(operation.description))}` : ""
  }</td>
<td>${escapeHtml(securityLabel(operation))}</td>
<td>${request}</td>
<td>${responses ? `<ul>${responses}</ul>` : "—"}</td>
</tr>`;
}

function securityLabel(operation: JsonObject): string {
  const kind = text(operation["x-relais-security"]);
  if (kind && SECURITY_LABELS[kind]) return SECURITY_LABELS[kind];
  const names = asArray(operation.security).flatMap((requirement) =>
    Object.keys(asObject(requirement))
  );
  return names.length > 0 ? names.join(" or ") : "None";
}

function refName(schema: JsonObject): string {
  const ref = text(schema.$ref);
  return ref.startsWith("#/components/schemas/") ? ref.slice("#/components/schemas/".length) : "";
}

/** Shows a named schema's definition rather than a bare `$ref`. */
function resolveRef(schema: JsonObject, components: JsonObject): JsonObject {
  const name = refName(schema);
  return name && components[name] ? asObject(components[name]) : schema;
}

/** Escapes text for HTML content and double- or single-quoted attribute values. */
function escapeHtml(value: string): string {
  return value.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

function slug(value: string): string {
  return value.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

function text(value: unknown): string {
  return typeof value === "string" ? value : typeof value === "number" ? String(value) : "";
}

function asObject(value: unknown): JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as JsonObject
    : {};
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}
