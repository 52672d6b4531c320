/// <reference lib="dom" />
/**
 * The ops page's script. The admin key is typed by the operator, kept in this tab's
 * `sessionStorage` and sent as `X-API-Key`: never in an address, never in a cookie.
 */

import { $, el, setupLanguage, timeOf } from "./_dom.ts";
import type { Key } from "./i18n.ts";
import { type History, redrawCharts, showCharts } from "./ops_charts.ts";
import { type IngestState, showIngest } from "./ops_ingest.ts";
import { setupLookup } from "./ops_lookup.ts";
import { summarize } from "./ops_metrics.ts";
import { type RetentionDetail, showRetention } from "./ops_retention.ts";

const STORAGE_KEY = "relais.adminKey";

interface Actor {
  kind: string;
  id: string;
  status: string;
  state: unknown;
}

interface Control {
  id: string;
  scope: { type: string; id?: string };
  features: string[];
  reason: string;
  until?: string;
  active: boolean;
}

interface DeadLetter {
  id: string;
  user: string;
  seq: number;
  attempts: number;
  reason: string;
  at: number;
}

class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

let adminKey = sessionStorage.getItem(STORAGE_KEY) ?? undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let inspected: { kind: string; id: string } | undefined;
let lastUpdate: number | undefined;
let lastMetrics: Record<string, number> = {};
let lastIngest: IngestState | undefined;
let lastRetention: RetentionDetail | undefined;
let lastHistory: History | undefined;

const language = setupLanguage(() => {
  renderStatus();
  renderMetrics();
  renderIngest();
  renderRetention();
  redrawCharts(t, language.lang());
  renderLookup();
});
const t = language.t;

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  if (adminKey) headers.set("x-api-key", adminKey);
  if (init.body) headers.set("content-type", "application/json");
  const res = await fetch(path, { ...init, headers, cache: "no-store" });
  const text = await res.text();
  if (!res.ok) {
    let message = text;
    try {
      message = JSON.parse(text).error?.message ?? text;
    } catch {
      // Not JSON.
    }
    throw new ApiError(res.status, message);
  }
  return (res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : text) as T;
}

function setStatus(text: string, error = false) {
  const node = $("ops-status");
  node.textContent = text;
  node.classList.toggle("error", error);
}

function renderStatus() {
  if (!adminKey) return setStatus(t("ops.needKey"));
  if (lastUpdate) setStatus(t("ops.updated", { time: timeOf(lastUpdate, language.lang()) }));
}

/** The cards shown once the key is accepted. */
const SECTIONS = [
  "metrics",
  "charts",
  "lookup",
  "actors",
  "controls",
  "dead-letters",
  "ingest",
  "retention",
];

function showSections(on: boolean) {
  for (const id of SECTIONS) $(id).hidden = !on;
}

function count(id: string, n: number) {
  const badge = $(id);
  badge.textContent = String(n);
  badge.dataset.count = String(n);
}

// ——— metrics ———

async function loadMetrics() {
  lastMetrics = summarize(await api<string>("/metrics"));
  renderMetrics();
}

function renderMetrics() {
  $("stats").replaceChildren(
    ...Object.entries(lastMetrics).map(([name, value]) =>
      el(
        "div",
        { "data-metric": name },
        el("dt", {}, t(`metric.${name}` as Key)),
        el("dd", {}, name === "latency" ? `${value} ms` : value.toLocaleString(language.lang())),
      )
    ),
  );
}

// ——— charts and lookups (ops_charts.ts, ops_lookup.ts) ———

async function loadCharts() {
  lastHistory = await api<History>("/v1/admin/metrics/history");
}

const renderLookup = setupLookup({ api, t, lang: language.lang, changed: () => void refresh() });

// ——— actors ———

async function loadActors() {
  const kind = $<HTMLSelectElement>("actor-kind").value;
  const list = await api<{ actors: Actor[] }>(
    `/v1/admin/actors${kind ? `?kind=${encodeURIComponent(kind)}` : ""}`,
  );
  count("actor-count", list.actors.length);
  $("actor-rows").replaceChildren(...list.actors.map((actor) => {
    const button = el("button", { type: "button", class: "link" }, t("ops.inspect"));
    button.addEventListener("click", () => {
      inspected = { kind: actor.kind, id: actor.id };
      void loadDetail();
    });
    return el(
      "tr",
      { "data-actor": `${actor.kind}:${actor.id}` },
      el("td", {}, actor.kind),
      el("td", {}, el("code", {}, actor.id)),
      el("td", {}, actor.status),
      el("td", {}, el("code", {}, JSON.stringify(actor.state))),
      el("td", {}, button),
    );
  }));
  $("actors-empty").hidden = list.actors.length > 0;
  if (inspected) await loadDetail();
}

async function loadDetail() {
  if (!inspected) return;
  const { kind, id } = inspected;
  $("actor-detail").hidden = false;
  $("actor-detail-title").textContent = `${kind} ${id}`;
  try {
    const detail = await api<unknown>(
      `/v1/admin/actors/${encodeURIComponent(kind)}/${encodeURIComponent(id)}`,
    );
    $("actor-detail-body").textContent = JSON.stringify(detail, null, 2);
  } catch (e) {
    $("actor-detail-body").textContent = e instanceof ApiError ? e.message : String(e);
  }
}

$("actor-kind").addEventListener("change", () => void refresh());

// ——— kill switches ———

async function loadControls() {
  let list: { controls: Control[] };
  try {
    list = await api<{ controls: Control[] }>("/v1/admin/controls");
  } catch (e) {
    // Older servers have no kill switches: say so instead of failing the page.
    if (e instanceof ApiError && e.status === 404) {
      $("controls-off").hidden = false;
      $("controls-on").hidden = true;
      return;
    }
    throw e;
  }
  $("controls-off").hidden = true;
  $("controls-on").hidden = false;
  $("control-rows").replaceChildren(...list.controls.map((control) => {
    const remove = el("button", { type: "button" }, t("ops.remove"));
    remove.addEventListener("click", async () => {
      await api(`/v1/admin/controls/${encodeURIComponent(control.id)}`, { method: "DELETE" });
      await refresh();
    });
    const scope = control.scope.id ? `${control.scope.type} ${control.scope.id}` : "SYSTEM";
    return el(
      "tr",
      { "data-control": control.id },
      el("td", {}, scope),
      el("td", {}, control.features.join(", ")),
      el("td", {}, control.reason),
      el(
        "td",
        {},
        control.until ? new Date(control.until).toLocaleString(language.lang()) : "—",
        ` (${t(control.active ? "ops.active" : "ops.expired")})`,
      ),
      el("td", {}, remove),
    );
  }));
  $("controls-empty").hidden = list.controls.length > 0;
}

function syncScopeId() {
  const system = $<HTMLSelectElement>("scope-type").value === "SYSTEM";
  const id = $<HTMLInputElement>("scope-id");
  id.disabled = system;
  id.required = !system;
}
$("scope-type").addEventListener("change", syncScopeId);

$("control-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const type = $<HTMLSelectElement>("scope-type").value;
  const features = [...document.querySelectorAll<HTMLInputElement>('input[name="feature"]:checked')]
    .map((input) => input.value);
  const until = $<HTMLInputElement>("until").value;
  const error = $("control-error");
  try {
    await api("/v1/admin/controls", {
      method: "PUT",
      body: JSON.stringify({
        scope: type === "SYSTEM" ? { type } : { type, id: $<HTMLInputElement>("scope-id").value },
        features,
        reason: $<HTMLInputElement>("reason").value,
        ...(until ? { until: new Date(until).toISOString() } : {}),
        by: "ops page",
      }),
    });
    error.hidden = true;
    $<HTMLFormElement>("control-form").reset();
    syncScopeId();
    await refresh();
  } catch (e) {
    error.hidden = false;
    error.textContent = e instanceof Error ? e.message : String(e);
  }
});

// ——— dead letters ———

async function loadDeadLetters() {
  const list = await api<{ items: DeadLetter[] }>("/v1/admin/dead-letters?limit=50");
  count("dead-count", list.items.length);
  $("dead-rows").replaceChildren(...list.items.map((d) =>
    el(
      "tr",
      {},
      el("td", {}, el("code", {}, d.id)),
      el("td", {}, d.user),
      el("td", {}, String(d.seq)),
      el("td", {}, String(d.attempts)),
      el("td", {}, d.reason),
      el("td", {}, new Date(d.at).toLocaleString(language.lang())),
    )
  ));
  $("dead-empty").hidden = list.items.length > 0;
}

// ——— change-data ingest ———

async function loadIngest() {
  try {
    lastIngest = await api<IngestState>("/v1/admin/ingest");
  } catch (e) {
    // Older servers have no ingest: shown as off.
    if (e instanceof ApiError && e.status === 404) lastIngest = { enabled: false };
    else throw e;
  }
  renderIngest();
}

function renderIngest() {
  if (lastIngest) showIngest(lastIngest, t, language.lang());
}

// ——— retention ———

async function loadRetention() {
  try {
    lastRetention = await api<RetentionDetail>("/v1/admin/actors/retention/main");
  } catch (e) {
    // Not running (or an older server): shown as off.
    if (e instanceof ApiError && (e.status === 404 || e.status === 400)) lastRetention = undefined;
    else throw e;
  }
  renderRetention();
}

function renderRetention() {
  showRetention(lastRetention, t, language.lang());
}

// ——— refresh loop ———

async function refresh() {
  clearTimeout(timer);
  if (!adminKey) {
    showSections(false);
    renderStatus();
    return;
  }
  try {
    await Promise.all([
      loadMetrics(),
      loadActors(),
      loadControls(),
      loadDeadLetters(),
      loadIngest(),
      loadRetention(),
      loadCharts(),
    ]);
    showSections(true);
    // Drawn once shown: a chart takes the width of its card.
    if (lastHistory) showCharts(lastHistory, t, language.lang());
    lastUpdate = Date.now();
    renderStatus();
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      showSections(false);
      setStatus(t("ops.badKey", { status: e.status }), true);
      return;
    }
    setStatus(e instanceof Error ? e.message : String(e), true);
  }
  if ($<HTMLInputElement>("auto-refresh").checked) {
    timer = setTimeout(() => void refresh(), 2000);
  }
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>("admin-key");
  adminKey = input.value.trim() || undefined;
  input.value = "";
  if (adminKey) sessionStorage.setItem(STORAGE_KEY, adminKey);
  else sessionStorage.removeItem(STORAGE_KEY);
  void refresh();
});
$("forget-key").addEventListener("click", () => {
  adminKey = undefined;
  sessionStorage.removeItem(STORAGE_KEY);
  lastUpdate = undefined;
  void refresh();
});
$("refresh").addEventListener("click", () => void refresh());
$("auto-refresh").addEventListener("change", () => void refresh());
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") void refresh();
  else clearTimeout(timer);
});

void refresh().then(() => void (document.body.dataset.ready = "true"));
