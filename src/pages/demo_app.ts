/// <reference lib="dom" />
/**
 * The demo page's script: logs a demo user in with a development token and shows what the
 * SDK delivers. It loads the SDK from `/sdk/relais.js`, exactly as an application would.
 */

import type * as Sdk from "../client/relais.ts";
import type { EventFrame, FrameOf, TransportKind } from "../client/types.ts";
import { $, el, setupLanguage, timeOf } from "./_dom.ts";
import { DEMO_USERS } from "./demo_users.ts";
import type { Key } from "./i18n.ts";

/** A message as the conversation routes answer it. */
interface Message {
  conversation: string;
  seq: number;
  id?: string;
  from: string;
  text: string;
  at: string;
  edited_at?: string;
  deleted?: true;
}

/** A conversation in the user's list. */
interface ConversationSummary {
  id: string;
  kind: string;
  title?: string;
  members: string[];
  last: { seq: number; at: string; from?: string; preview?: string } | null;
  unread: number;
  presence: Record<string, string>;
}

/** A conversation in detail. */
interface ConversationView {
  id: string;
  title?: string;
  members: { id: string; read: number; presence: string }[];
}

// A variable keeps the bundler from inlining the SDK: the page uses the served module.
const SDK_URL = "/sdk/relais.js";
const sdk = await import(SDK_URL) as typeof Sdk;

let relais: Sdk.RelaisClient | undefined;
let me: string | undefined;
let token: { user: string; value: string; expiresAt: number } | undefined;
let status: Sdk.StatusChange = { state: "idle" };
const inbox = new Map<string, Sdk.InboxItem>();
const acked = new Set<string>();
let unread = 0;
const liveEvents: { at: number; frame: EventFrame }[] = [];
let conversations: ConversationSummary[] = [];
const presence = new Map<string, string>();
let current: ConversationView | undefined;
const messages = new Map<number, Message>();
const typingUntil = new Map<string, number>();
let inboxRefresh: ReturnType<typeof setTimeout> | undefined;
let conversationsRefresh: ReturnType<typeof setTimeout> | undefined;

const language = setupLanguage(() => renderAll());
const t = language.t;

/** A development token for a demo user, reused until it is about to expire. */
async function demoToken(user: string): Promise<string> {
  if (token?.user === user && token.expiresAt > Date.now() + 60_000) return token.value;
  const res = await fetch(`/demo/token?user=${encodeURIComponent(user)}`, { cache: "no-store" });
  if (!res.ok) throw new Error(`No demo token for "${user}": status ${res.status}`);
  const body = await res.json() as { token: string; expires_at: string };
  token = { user, value: body.token, expiresAt: Date.parse(body.expires_at) };
  return body.token;
}

/** Calls a development-only demo route as the current user. */
async function demoPost(path: string, body: unknown): Promise<Response> {
  const res = await fetch(path, {
    method: "POST",
    headers: {
      authorization: `Bearer ${await demoToken(me!)}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
  });
  if (!res.ok) notice(`${path}: ${res.status} ${await res.text()}`);
  return res;
}

let noticeTimer: ReturnType<typeof setTimeout> | undefined;

/** Shows a message for a while (errors, incomplete resumes, kill switches). */
function notice(text: string | undefined) {
  const node = $("notice");
  node.hidden = !text;
  node.textContent = text ?? "";
  clearTimeout(noticeTimer);
  if (text) noticeTimer = setTimeout(() => notice(undefined), 10_000);
}

// ——— connection ———

function connect(user: string, transports: TransportKind[]) {
  relais?.close();
  me = user;
  inbox.clear();
  acked.clear();
  unread = 0;
  liveEvents.length = 0;
  conversations = [];
  current = undefined;
  messages.clear();
  notice(undefined);
  const client = relais = sdk.createRelais({
    token: () => demoToken(user),
    ...(transports.length > 0 ? { transports } : {}),
  });
  // For the console and for browser tests.
  (globalThis as { relais?: unknown }).relais = client;
  client.on("status", (s) => {
    status = s;
    renderStatus();
  });
  client.on("welcome", () => {
    refreshInbox();
    refreshConversations();
  });
  client.on("resync", () => {
    notice(t("resync"));
    refreshInbox();
  });
  client.on("event", onEvent);
  client.on("update", (frame) => {
    inbox.delete(frame.replaces.id);
    onEvent({ type: "event", seq: frame.seq, envelope: frame.envelope });
  });
  client.on("summary", () => refreshInbox());
  client.on("msg", onMessage);
  client.on("receipt", (frame) => {
    const member = current?.members.find((m) => m.id === frame.user);
    if (current?.id === frame.conversation && member) {
      member.read = Math.max(member.read, frame.seq);
      renderMessages();
    }
  });
  client.on("typing", (frame) => {
    if (frame.user === me || frame.conversation !== current?.id) return;
    typingUntil.set(frame.user, Date.now() + 4000);
    renderTyping();
    setTimeout(renderTyping, 4100);
  });
  client.on("presence", (frame) => {
    presence.set(frame.user, frame.status);
    renderConversations();
    renderConversationTitle();
  });
  client.on("control", (frame) => {
    const off = frame.disabled.map((d) => `${d.feature} (${d.reason})`).join(", ");
    notice(off ? t("control.off", { features: off }) : undefined);
    if (!frame.features.messaging) chatAvailable(false);
  });
  client.connect();
  for (const id of ["disconnect", "send-test", "read-all", "send-realtime", "open-conversation"]) {
    $<HTMLButtonElement>(id).disabled = false;
  }
  renderPeers();
  renderAll();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const transports = [...document.querySelectorAll<HTMLInputElement>(
    'input[name="transport"]:checked',
  )].map((input) => input.value as TransportKind);
  connect($<HTMLSelectElement>("user").value, transports);
});

$("disconnect").addEventListener("click", () => {
  relais?.close();
  for (const id of ["disconnect", "send-test", "read-all", "send-realtime", "open-conversation"]) {
    $<HTMLButtonElement>(id).disabled = true;
  }
});

function renderStatus() {
  const node = $("status");
  node.removeAttribute("data-i18n");
  node.dataset.state = status.state;
  node.dataset.transport = status.transport ?? "";
  $("status-dot").dataset.state = status.state;
  const transport = status.transport === "ws"
    ? "WebSocket"
    : status.transport === "sse"
    ? "SSE"
    : status.transport === "poll"
    ? "long-polling"
    : "";
  node.textContent = t(`state.${status.state}` as Key, {
    transport,
    user: me ?? "",
    delay: ((status.delayMs ?? 0) / 1000).toFixed(1),
  });
}

// ——— inbox ———

function scheduleInboxRefresh() {
  clearTimeout(inboxRefresh);
  inboxRefresh = setTimeout(refreshInbox, 150);
}

function refreshInbox() {
  const client = relais;
  client?.notifications({ limit: 50 }).then((page) => {
    if (client !== relais) return;
    inbox.clear();
    for (const item of page.items) inbox.set(item.id, item);
    unread = page.unread_count;
    renderInbox();
  }).catch((e) => notice(String(e)));
}

function onEvent(frame: EventFrame) {
  const { metadata, payload } = frame.envelope;
  if (metadata.type === "REALTIME" || metadata.type === "SYSTEM") {
    liveEvents.unshift({ at: Date.now(), frame });
    liveEvents.length = Math.min(liveEvents.length, 50);
    renderEvents();
  }
  if (metadata.type !== "REALTIME") {
    // Shown at once from the frame; the inbox listing then brings the read/ack flags.
    if (!inbox.has(metadata.id)) {
      inbox.set(metadata.id, {
        seq: frame.seq,
        id: metadata.id,
        metadata,
        payload,
        read: false,
        ack_required: false,
      });
      unread++;
      renderInbox();
    }
    scheduleInboxRefresh();
  }
}

function textOf(item: { metadata: { topic: string }; payload: unknown }) {
  const payload = (item.payload ?? {}) as Record<string, unknown>;
  const local = (payload[language.lang()] ?? payload.fr ?? payload.en) as
    | Record<string, unknown>
    | undefined;
  if (local && typeof local === "object" && (local.title || local.body)) {
    return { title: String(local.title ?? ""), body: String(local.body ?? "") };
  }
  if (typeof payload.template === "string") {
    return { title: payload.template, body: JSON.stringify(payload.parameters ?? {}) };
  }
  return { title: item.metadata.topic, body: JSON.stringify(payload).slice(0, 300) };
}

function renderInbox() {
  const list = $("notifications");
  const items = [...inbox.values()].sort((a, b) => b.seq - a.seq);
  list.replaceChildren(...items.map((item) => {
    const { title, body } = textOf(item);
    const read = el(
      "button",
      { type: "button", disabled: item.read },
      t(item.read ? "inbox.isRead" : "inbox.read"),
    );
    read.addEventListener("click", async () => {
      await relais?.read(item.id);
      if (!item.read) unread = Math.max(0, unread - 1);
      item.read = true;
      renderInbox();
    });
    let ack: HTMLButtonElement | undefined;
    if (item.ack_required) {
      const done = acked.has(item.id);
      ack = el("button", { type: "button", disabled: done }, t(done ? "inbox.acked" : "inbox.ack"));
      ack.addEventListener("click", async () => {
        await relais?.ack(item.id);
        acked.add(item.id);
        renderInbox();
      });
    }
    return el(
      "li",
      { class: "item", "data-id": item.id, "data-read": String(item.read) },
      el("div", { class: "item-title" }, title),
      el("div", { class: "item-body" }, body),
      el(
        "div",
        { class: "meta" },
        `${item.metadata.source} · ${item.metadata.topic} · #${item.seq}`,
      ),
      el("div", { class: "row" }, read, ack),
    );
  }));
  $("inbox-empty").hidden = items.length > 0;
  const badge = $("unread");
  badge.textContent = String(unread);
  badge.dataset.count = String(unread);
  badge.setAttribute("aria-label", t("inbox.unread", { count: unread }));
}

$("read-all").addEventListener("click", async () => {
  await relais?.readAll();
  for (const item of inbox.values()) item.read = true;
  unread = 0;
  renderInbox();
});
$("send-test").addEventListener(
  "click",
  () => void demoPost("/demo/events", { type: "NOTIFICATION" }),
);
$("send-realtime").addEventListener(
  "click",
  () => void demoPost("/demo/events", { type: "REALTIME" }),
);

// ——— live events ———

function renderEvents() {
  $("events").replaceChildren(...liveEvents.map(({ at, frame }) => {
    const { metadata, payload } = frame.envelope;
    return el(
      "li",
      {},
      el("span", { class: "meta" }, `${timeOf(at, language.lang())} · ${metadata.type} `),
      el("code", {}, metadata.topic),
      metadata.operation ? ` ${metadata.operation} ` : " ",
      el("code", {}, JSON.stringify(payload).slice(0, 300)),
    );
  }));
  $("events-empty").hidden = liveEvents.length > 0;
}

// ——— conversations ———

function chatAvailable(on: boolean) {
  $("chat-on").hidden = !on;
  $("chat-off").hidden = on;
}

function renderPeers() {
  $("peer").replaceChildren(
    ...DEMO_USERS.filter((u) => u !== me).map((u) => el("option", { value: u }, u)),
  );
}

function scheduleConversationsRefresh() {
  clearTimeout(conversationsRefresh);
  conversationsRefresh = setTimeout(refreshConversations, 200);
}

function refreshConversations() {
  const client = relais;
  client?.conversations<{ conversations: ConversationSummary[] }>().then((list) => {
    if (client !== relais) return;
    chatAvailable(true);
    conversations = list.conversations;
    for (const c of conversations) {
      for (const [user, status] of Object.entries(c.presence ?? {})) presence.set(user, status);
    }
    renderConversations();
  }).catch((error: { status?: number }) => {
    if (error.status === 404 || error.status === 403) chatAvailable(false);
    else notice(String(error));
  });
}

const othersOf = (members: string[]) => members.filter((m) => m !== me);

function renderConversations() {
  $("conversations").replaceChildren(...conversations.map((c) => {
    const others = othersOf(c.members);
    const button = el(
      "button",
      {
        type: "button",
        class: "conversation-button",
        "aria-current": String(current?.id === c.id),
        "data-conversation": c.id,
      },
      ...others.slice(0, 3).map((u) =>
        el("span", {
          class: "dot",
          "data-presence": presence.get(u) ?? "offline",
          title: t(`presence.${presence.get(u) ?? "offline"}` as Key),
        })
      ),
      c.title ?? others.join(", "),
      c.unread > 0 && current?.id !== c.id
        ? el("span", { class: "badge", "data-count": String(c.unread) }, String(c.unread))
        : undefined,
    );
    button.addEventListener("click", () => void openConversation(c.id));
    return el("li", {}, button);
  }));
  $("conversations-empty").hidden = conversations.length > 0;
}

$("new-conversation").addEventListener("submit", async (event) => {
  event.preventDefault();
  const peer = $<HTMLSelectElement>("peer").value;
  const res = await demoPost("/demo/conversations", { with: peer });
  if (!res.ok) return;
  const conversation = await res.json() as { id: string };
  refreshConversations();
  await openConversation(conversation.id);
});

async function openConversation(id: string) {
  if (!relais) return;
  const [view, history] = await Promise.all([
    relais.request<ConversationView>("GET", `/v1/conversations/${encodeURIComponent(id)}`),
    relais.messages<{ messages: Message[] }>(id, { limit: 50 }),
  ]);
  current = view;
  for (const m of view.members) presence.set(m.id, m.presence);
  messages.clear();
  for (const m of history.messages) messages.set(m.seq, m);
  $("conversation").hidden = false;
  renderConversationTitle();
  renderMessages();
  markRead();
  const entry = conversations.find((c) => c.id === id);
  if (entry) entry.unread = 0;
  renderConversations();
  $("message").focus();
}

function markRead() {
  if (!current || !relais) return;
  const last = Math.max(0, ...messages.keys());
  if (last > 0 && document.visibilityState === "visible") {
    void relais.readConversation(current.id, last).catch(() => {});
  }
}

function onMessage(frame: FrameOf<"msg">) {
  if (frame.conversation === current?.id) {
    messages.set(frame.seq, frame);
    renderMessages();
    if (frame.from !== me) markRead();
    typingUntil.delete(frame.from);
    renderTyping();
  }
  scheduleConversationsRefresh();
}

function renderConversationTitle() {
  if (!current) return;
  const others = othersOf(current.members.map((m) => m.id));
  const who = others.map((u) => `${u} (${t(`presence.${presence.get(u) ?? "offline"}` as Key)})`);
  $("conversation-title").textContent = current.title ?? who.join(", ");
}

function renderMessages() {
  if (!current) return;
  const list = $("messages");
  const sorted = [...messages.values()].sort((a, b) => a.seq - b.seq);
  const mine = sorted.filter((m) => m.from === me);
  const lastMine = mine[mine.length - 1];
  list.replaceChildren(...sorted.map((m) => {
    const seenBy = m === lastMine
      ? current!.members.filter((x) => x.id !== me && x.read >= m.seq).map((x) => x.id)
      : [];
    return el(
      "li",
      {
        class: `message${m.from === me ? " mine" : ""}${m.deleted ? " deleted" : ""}`,
        "data-seq": String(m.seq),
      },
      el(
        "span",
        { class: "meta" },
        `${m.from === me ? t("chat.you") : m.from} · ${timeOf(m.at, language.lang())}${
          m.edited_at && !m.deleted ? ` · ${t("chat.edited")}` : ""
        }`,
      ),
      el("span", { class: "text" }, m.deleted ? t("chat.deleted") : m.text),
      seenBy.length > 0
        ? el("span", { class: "meta seen" }, t("chat.seen", { users: seenBy.join(", ") }))
        : undefined,
    );
  }));
  list.scrollTop = list.scrollHeight;
}

function renderTyping() {
  const now = Date.now();
  const who = [...typingUntil].filter(([, until]) => until > now).map(([user]) => user);
  $("typing").textContent = who.map((user) => t("chat.typing", { user })).join(" ");
}

$("compose").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>("message");
  const text = input.value.trim();
  if (!text || !current || !relais) return;
  input.value = "";
  try {
    await relais.send(current.id, text);
  } catch (e) {
    notice(String(e));
    input.value = text;
  }
});
$("message").addEventListener("input", () => {
  if (current && relais) void relais.typing(current.id).catch(() => {});
});
document.addEventListener("visibilitychange", markRead);

function renderAll() {
  renderStatus();
  renderInbox();
  renderEvents();
  renderConversations();
  renderConversationTitle();
  renderMessages();
  renderTyping();
}

// Pre-select a user and transports from the address (`/?user=yanis&transports=sse,poll`).
const params = new URLSearchParams(location.search);
const wanted = params.get("user");
if (wanted && (DEMO_USERS as readonly string[]).includes(wanted)) {
  $<HTMLSelectElement>("user").value = wanted;
}
const only = params.get("transports")?.split(",");
if (only) {
  for (const input of document.querySelectorAll<HTMLInputElement>('input[name="transport"]')) {
    input.checked = only.includes(input.value);
  }
}
renderAll();
document.body.dataset.ready = "true";
