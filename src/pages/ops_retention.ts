/// <reference lib="dom" />
/** The ops page's retention card: the sweeper's rounds, as its actor's inspection shows them. */

import { $, el } from "./_dom.ts";
import type { Key } from "./i18n.ts";

/** Records removed, by kind. */
type Counts = Partial<Record<"items" | "events" | "dead_letters" | "audit", number>>;

/** What `GET /v1/admin/actors/retention/main` answers (the parts shown). */
export interface RetentionDetail {
  state: unknown;
  context: {
    kinds: string[];
    rounds: number;
    lastRound?: { startedAt: number; endedAt: number; steps: number; swept: Counts };
    round?: { startedAt: number; swept: Counts };
    nextRoundAt?: number;
    totals: Counts;
    lastError?: string;
  };
}

const KINDS: [keyof Counts, Key][] = [
  ["items", "ops.retentionItems"],
  ["events", "ops.retentionEvents"],
  ["dead_letters", "ops.retentionDeadLetters"],
  ["audit", "ops.retentionAudit"],
];

/** Shows the sweeper in the retention card; `undefined` when it is not running. */
export function showRetention(
  detail: RetentionDetail | undefined,
  t: (key: Key) => string,
  lang: string,
) {
  const state = detail === undefined
    ? "off"
    : typeof detail.state === "string"
    ? detail.state
    : JSON.stringify(detail.state);
  $("retention-state").textContent = state;
  const context = detail?.context;
  const time = (at: number | undefined) =>
    at === undefined ? "—" : new Date(at).toLocaleString(lang);
  const last = context?.lastRound?.swept ?? {};
  const totals = context?.totals ?? {};
  const on = new Set(context?.kinds ?? []);
  const stats: [string, string][] = [
    [t("ops.retentionLast"), time(context?.lastRound?.endedAt)],
    [t("ops.retentionNext"), time(context?.nextRoundAt)],
    ...KINDS.map(([kind, key]): [string, string] => [
      t(key),
      on.has(kind)
        ? `${(last[kind] ?? 0).toLocaleString(lang)} (${(totals[kind] ?? 0).toLocaleString(lang)})`
        : "off",
    ]),
  ];
  $("retention-stats").replaceChildren(
    ...stats.map(([label, value]) => el("div", {}, el("dt", {}, label), el("dd", {}, value))),
  );
  const error = $("retention-error");
  error.hidden = !context?.lastError;
  error.textContent = context?.lastError ?? "";
}
