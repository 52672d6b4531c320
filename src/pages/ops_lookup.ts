/// <reference lib="dom" />
/**
 * The ops page's lookup card: a user (with the "disconnect" and "switch off" actions), an
 * event's delivery status drawn as a bar, or a conversation.
 */

import { $, el } from "./_dom.ts";
import type { Key } from "./i18n.ts";

type Translate = (key: Key, params?: Record<string, string | number>) => string;

/** What the lookup card needs from the page. */
export interface LookupDeps {
  api<T>(path: string, init?: RequestInit): Promise<T>;
  t: Translate;
  lang(): string;
  /** Something changed (a switch was set): the page refreshes its other cards. */
  changed(): void;
}

interface UserLookup {
  id: string;
  node: string;
  directory: {
    name: string | null;
    email: string | null;
    category: string | null;
    roles: string[];
    structures: string[];
  } | null;
  connections: { id: string; transport: string }[];
  connection_counts: Record<"ws" | "sse" | "poll", number>;
  stream: { epoch: string | null; released?: number; last_seq: number };
  unread: number;
  pending: { id: string; seq: number; attempts: number; limit: number; next_at: string | null }[];
  pending_count: number;
  controls: { id: string; features: string[]; reason: string; until?: string }[];
  last_deliveries: { id: string; seq: number; type: string; at: string; read: boolean }[];
  actor: { status: string; state: unknown } | null;
}

interface EventStatus {
  id: string;
  type: string;
  accepted_at: string;
  ack_required: boolean;
  targeted: number;
  delivered: number;
  acked: number;
  failed: number;
  pending_users: string[];
}

interface ConversationLookup {
  id: string;
  info: { kind: string; title?: string; createdAt: number; createdBy: string };
  head: { seq: number; at: number; from?: string } | null;
  members: { id: string; role: string; read: number; muted: boolean }[];
  member_count: number;
  actor: { status: string; state: unknown } | null;
}

const FEATURES = ["realtime", "notifications", "messaging", "email"];

/** Wires the lookup form; answers a function that re-renders the last result. */
export function setupLookup(deps: LookupDeps): () => void {
  const { api, t } = deps;
  let current: { kind: string; id: string } | undefined;

  const stat = (key: Key, value: string | number, attrs: Record<string, string> = {}) =>
    el("div", attrs, el("dt", {}, t(key)), el("dd", {}, String(value)));
  const date = (iso: string | number) => new Date(iso).toLocaleString(deps.lang());
  // A head is a label key, or `=text` for text said the same in every language.
  const head = (h: Key | `=${string}`) => h.startsWith("=") ? h.slice(1) : t(h as Key);
  const table = (heads: (Key | `=${string}`)[], rows: HTMLElement[], empty: Key, id: string) =>
    rows.length === 0 ? el("p", { class: "empty", id }, t(empty)) : el(
      "table",
      { id },
      el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { scope: "col" }, head(h))))),
      el("tbody", {}, ...rows),
    );
  const row = (...cells: (string | Node)[]) => el("tr", {}, ...cells.map((c) => el("td", {}, c)));
  const actorLine = (actor: { status: string; state: unknown } | null) =>
    el(
      "p",
      { id: "lookup-actor" },
      el("strong", {}, `${t("lookup.actor")} : `),
      actor ? `${actor.status} ${JSON.stringify(actor.state)}` : t("lookup.noActor"),
    );

  function status(text: string) {
    $("lookup-status").textContent = text;
  }

  function fail(e: unknown) {
    const error = $("lookup-error");
    error.hidden = false;
    error.textContent = e instanceof Error ? e.message : String(e);
  }

  /** Runs an action, then the lookup again, then says what it did (or why it failed). */
  async function act(action: () => Promise<string>) {
    try {
      const said = await action();
      await run();
      status(said);
    } catch (e) {
      fail(e);
    }
  }

  function userView(user: UserLookup): HTMLElement[] {
    const d = user.directory;
    const stream = user.stream;
    const disconnect = el(
      "button",
      { type: "button", id: "lookup-disconnect" },
      t("lookup.disconnect"),
    );
    disconnect.addEventListener("click", () =>
      void act(async () => {
        const done = await api<{ closed: number }>(
          `/v1/admin/users/${encodeURIComponent(user.id)}/disconnect`,
          { method: "POST", body: JSON.stringify({ by: "ops page" }) },
        );
        return t("lookup.disconnected", { count: done.closed });
      }));
    const reason = el("input", {
      id: "lookup-reason",
      required: true,
      maxlength: "500",
      size: "24",
    });
    const switchOff = el(
      "form",
      { id: "lookup-switch-off", class: "row" },
      el("label", { for: "lookup-reason" }, t("lookup.reasonPrompt")),
      reason,
      el("button", { type: "submit" }, t("lookup.switchOff")),
    );
    switchOff.addEventListener("submit", (event) => {
      event.preventDefault();
      void act(async () => {
        const id = `user:${user.id}`;
        await api(`/v1/admin/controls/${encodeURIComponent(id)}`, {
          method: "PUT",
          body: JSON.stringify({ features: FEATURES, reason: reason.value, by: "ops page" }),
        });
        deps.changed();
        return t("lookup.switchedOff", { id });
      });
    });
    return [
      el(
        "h3",
        {},
        user.id,
        " ",
        el("span", { class: "meta" }, t("lookup.node", { node: user.node })),
      ),
      el("div", { class: "row" }, disconnect, switchOff),
      el(
        "dl",
        { class: "stats", id: "lookup-stats" },
        stat("lookup.connections", user.connections.length, { "data-field": "connections" }),
        stat("chart.ws", user.connection_counts.ws),
        stat("chart.sse", user.connection_counts.sse),
        stat("chart.poll", user.connection_counts.poll),
        stat("lookup.epoch", stream.epoch ?? "—", { "data-field": "epoch" }),
        stat("lookup.released", stream.released ?? "—"),
        stat("lookup.lastSeq", stream.last_seq),
        stat("lookup.unread", user.unread, { "data-field": "unread" }),
        stat("lookup.pending", user.pending_count, { "data-field": "pending" }),
      ),
      el("h3", {}, t("lookup.directory")),
      d
        ? el(
          "p",
          { id: "lookup-directory" },
          [d.name, d.email, d.category, d.roles.join(", "), d.structures.join(", ")]
            .filter((x) => x).join(" · "),
        )
        : el("p", { class: "empty", id: "lookup-directory" }, t("lookup.notInDirectory")),
      el("h3", {}, t("lookup.pending")),
      table(
        ["ops.id", "=seq", "ops.attempts", "lookup.nextRetry"],
        user.pending.map((p) =>
          row(
            el("code", {}, p.id),
            String(p.seq),
            `${p.attempts}/${p.limit}`,
            p.next_at ? date(p.next_at) : "—",
          )
        ),
        "lookup.noPending",
        "lookup-pending",
      ),
      el("h3", {}, t("lookup.controls")),
      table(
        ["ops.scope", "ops.features", "ops.reason"],
        user.controls.map((c) => {
          const tr = row(c.id, c.features.join(", "), c.reason);
          tr.dataset.control = c.id;
          return tr;
        }),
        "lookup.noControls",
        "lookup-controls",
      ),
      el("h3", {}, t("lookup.lastDeliveries")),
      table(
        ["ops.id", "lookup.type", "lookup.at", "inbox.isRead"],
        user.last_deliveries.map((i) =>
          row(el("code", {}, i.id), i.type, date(i.at), t(i.read ? "lookup.yes" : "lookup.no"))
        ),
        "lookup.noDeliveries",
        "lookup-deliveries",
      ),
      actorLine(user.actor),
    ];
  }

  function eventView(e: EventStatus): HTMLElement[] {
    const acked = e.acked;
    const failed = e.failed;
    const delivered = Math.max(0, e.delivered - acked - failed);
    const waiting = Math.max(0, e.targeted - Math.max(e.delivered, acked + failed));
    const total = Math.max(1, acked + delivered + failed + waiting);
    const parts: [string, Key, number][] = [
      ["acked", "lookup.acked", acked],
      ["delivered", "lookup.delivered", delivered],
      ["failed", "lookup.failed", failed],
      ["pending", "lookup.waiting", waiting],
    ];
    const bar = el("div", { class: "status-bar", id: "lookup-bar", role: "img" });
    bar.setAttribute("aria-label", parts.map(([, key, n]) => `${t(key)} ${n}`).join(", "));
    for (const [name, key, n] of parts) {
      if (n === 0) continue;
      const segment = el("span", { class: `segment ${name}`, title: `${t(key)} ${n}` });
      segment.dataset.part = name;
      segment.dataset.count = String(n);
      // Widths through the CSSOM: the page's policy forbids inline style attributes.
      segment.style.width = `${(n / total) * 100}%`;
      bar.append(segment);
    }
    return [
      el("h3", {}, e.id, " ", el("span", { class: "meta" }, `${e.type} · ${date(e.accepted_at)}`)),
      bar,
      el(
        "dl",
        { class: "stats", id: "lookup-stats" },
        stat("lookup.targeted", e.targeted, { "data-field": "targeted" }),
        ...parts.map(([name, key, n]) => stat(key, n, { "data-field": name })),
      ),
      ...(e.pending_users.length
        ? [
          el(
            "p",
            {},
            el("strong", {}, `${t("lookup.pendingUsers")} : `),
            e.pending_users.join(", "),
          ),
        ]
        : []),
    ];
  }

  function conversationView(c: ConversationLookup): HTMLElement[] {
    return [
      el(
        "h3",
        {},
        c.info.title ?? c.id,
        " ",
        el("span", { class: "meta" }, `${c.info.kind} · ${c.info.createdBy}`),
      ),
      el(
        "dl",
        { class: "stats", id: "lookup-stats" },
        stat("lookup.members", c.member_count, { "data-field": "members" }),
        stat("lookup.head", c.head ? c.head.seq : 0, { "data-field": "head" }),
        stat("lookup.at", c.head ? date(c.head.at) : "—"),
      ),
      table(
        ["ops.user", "lookup.role", "lookup.read", "lookup.muted"],
        c.members.map((m) => {
          const tr = row(m.id, m.role, String(m.read), t(m.muted ? "lookup.yes" : "lookup.no"));
          tr.dataset.member = m.id;
          return tr;
        }),
        "lookup.noDeliveries",
        "lookup-members",
      ),
      actorLine(c.actor),
    ];
  }

  let shown: { kind: string; body: unknown } | undefined;

  function render() {
    if (!shown) return;
    const result = $("lookup-result");
    const views = shown.kind === "user"
      ? userView(shown.body as UserLookup)
      : shown.kind === "event"
      ? eventView(shown.body as EventStatus)
      : conversationView(shown.body as ConversationLookup);
    result.replaceChildren(...views);
    result.dataset.kind = shown.kind;
    result.hidden = false;
  }

  async function run() {
    if (!current) return;
    const { kind, id } = current;
    const path = kind === "user"
      ? `/v1/admin/users/${encodeURIComponent(id)}`
      : kind === "event"
      ? `/v1/events/${encodeURIComponent(id)}`
      : `/v1/admin/conversations/${encodeURIComponent(id)}`;
    try {
      shown = { kind, body: await api<unknown>(path) };
      $("lookup-error").hidden = true;
      render();
    } catch (e) {
      shown = undefined;
      $("lookup-result").hidden = true;
      fail(e);
    }
  }

  $("lookup-form").addEventListener("submit", (event) => {
    event.preventDefault();
    current = {
      kind: $<HTMLSelectElement>("lookup-kind").value,
      id: $<HTMLInputElement>("lookup-id").value.trim(),
    };
    status("");
    void run();
  });
  return render;
}
