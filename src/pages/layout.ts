/** The HTML shell of the demo and ops pages, with their French labels filled in. */

import { frLabel, type Key } from "./i18n.ts";

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/**
 * Fills the French labels in: `data-i18n="key"` on an empty element gets its text, and
 * `data-i18n-placeholder` / `data-i18n-aria-label` get their attribute. The page scripts
 * do the same at run time for the language the user picks.
 */
export function fillLabels(html: string): string {
  return html
    .replace(
      /data-i18n="([\w.]+)"([^>]*)><\//g,
      (_, key: Key, rest: string) => `data-i18n="${key}"${rest}>${escapeHtml(frLabel(key))}</`,
    )
    .replace(
      /data-i18n-(placeholder|aria-label)="([\w.]+)"/g,
      (_, attr: string, key: Key) =>
        `data-i18n-${attr}="${key}" ${attr}="${escapeHtml(frLabel(key))}"`,
    );
}

/**
 * A complete page: the stylesheet (and `styles`, more of the server's own), one module
 * script, a skip link and a header.
 */
export function page(options: {
  title: string;
  subtitleKey: Key;
  script: string;
  body: string;
  styles?: string[];
}): string {
  const styles = (options.styles ?? []).map((href) =>
    `\n<link rel="stylesheet" href="${escapeHtml(href)}">`
  ).join("");
  return fillLabels(`<!doctype html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<link rel="icon" href="data:,">
<title>${escapeHtml(options.title)}</title>
<link rel="stylesheet" href="/assets/relais.css">${styles}
<script type="module" src="${options.script}"></script>
</head>
<body>
<a class="skip" href="#main" data-i18n="skip"></a>
<header class="bar">
  <h1><span class="logo" aria-hidden="true">⇄</span> relais <small data-i18n="${options.subtitleKey}"></small></h1>
  <div class="lang" role="group" data-i18n-aria-label="lang.label">
    <button type="button" data-lang="fr" aria-pressed="true" lang="fr">FR</button>
    <button type="button" data-lang="en" aria-pressed="false" lang="en">EN</button>
  </div>
</header>
${options.body}
</body>
</html>
`);
}
