/// <reference lib="dom" />
/** Browser helpers shared by the page scripts: elements, language switching, dates. */

import { type Key, type Lang, MESSAGES, translate } from "./i18n.ts";

/** The element with `id` (the pages always have it). */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`Missing element #${id}`);
  return found as T;
}

/** Creates an element with attributes and children (text is never parsed as HTML). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | undefined> = {},
  ...children: (Node | string | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (name === "class") node.className = String(value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== undefined && child !== false) node.append(child);
  return node;
}

/** The language picker of a page. */
export interface Language {
  lang(): Lang;
  t(key: Key, params?: Record<string, string | number>): string;
}

/** Wires the FR/EN buttons and applies the stored language; `onChange` runs on a switch. */
export function setupLanguage(onChange: () => void): Language {
  const stored = localStorage.getItem("relais.lang");
  let lang: Lang = stored === "en" || stored === "fr"
    ? stored
    : navigator.language.toLowerCase().startsWith("en")
    ? "en"
    : "fr";

  function apply(notify = true) {
    document.documentElement.lang = lang;
    for (const node of document.querySelectorAll<HTMLElement>("[data-i18n]")) {
      const key = node.dataset.i18n as Key;
      if (key in MESSAGES[lang]) node.textContent = translate(lang, key);
    }
    for (const attr of ["placeholder", "aria-label"]) {
      for (const node of document.querySelectorAll<HTMLElement>(`[data-i18n-${attr}]`)) {
        node.setAttribute(attr, translate(lang, node.getAttribute(`data-i18n-${attr}`) as Key));
      }
    }
    for (const button of document.querySelectorAll<HTMLButtonElement>("[data-lang]")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
    }
    if (notify) onChange();
  }

  for (const button of document.querySelectorAll<HTMLButtonElement>("[data-lang]")) {
    button.addEventListener("click", () => {
      lang = button.dataset.lang === "en" ? "en" : "fr";
      localStorage.setItem("relais.lang", lang);
      apply();
    });
  }
  // The page script renders itself once it is set up: only later changes call `onChange`.
  apply(false);
  return { lang: () => lang, t: (key, params) => translate(lang, key, params) };
}

/** A time of day in the page's language. */
export function timeOf(iso: string | number | undefined, lang: Lang): string {
  if (iso === undefined) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString(lang === "fr" ? "fr-FR" : "en-GB", {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}
