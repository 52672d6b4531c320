/// <reference lib="dom" />
/** The ops page's change-data ingest card: the reader's state and its last dead letters. */

import { $, el } from "./_dom.ts";
import type { Key } from "./i18n.ts";

/** What `GET /v1/admin/ingest` answers. */
export interface IngestState {
  enabled: boolean;
  status?: string;
  lag?: number | null;
  pending?: number | null;
  last_id?: string | null;
  last_error?: string;
  counts?: { entries: Record<string, number> };
  dead_letters?: { id: string; entry: string; reason: string; detail: string }[];
}

/** Shows `state` in the ingest card. */
export function showIngest(state: IngestState, t: (key: Key) => string, lang: string) {
  $("ingest-off").hidden = state.enabled;
  $("ingest-on").hidden = !state.enabled;
  $("ingest-status").textContent = state.enabled ? state.status ?? "" : "off";
  if (!state.enabled) return;
  const entries = state.counts?.entries ?? {};
  const number = (n: number | null | undefined) =>
    n === null || n === undefined ? "—" : n.toLocaleString(lang);
  const stats: [Key, string][] = [
    ["ops.ingestLag", number(state.lag)],
    ["ops.ingestPending", number(state.pending)],
    ["ops.ingestLastId", state.last_id ?? "—"],
    ["ops.ingestPublished", number(entries.published)],
    ["ops.ingestReplayed", number(entries.replayed)],
    ["ops.ingestSkipped", number((entries.skipped ?? 0) + (entries.switched_off ?? 0))],
    ["ops.ingestDead", number(entries.dead)],
  ];
  $("ingest-stats").replaceChildren(
    ...stats.map(([key, value]) => el("div", {}, el("dt", {}, t(key)), el("dd", {}, value))),
  );
  const error = $("ingest-error");
  error.hidden = !state.last_error;
  error.textContent = state.last_error ?? "";
  const dead = state.dead_letters ?? [];
  $("ingest-dead-rows").replaceChildren(...dead.map((d) =>
    el(
      "tr",
      {},
      el("td", {}, el("code", {}, d.entry)),
      el("td", {}, d.reason),
      el("td", {}, d.detail),
    )
  ));
  $("ingest-dead-empty").hidden = dead.length > 0;
}
