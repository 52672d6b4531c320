/// <reference lib="dom" />
/**
 * The demo page's chat panel: the user's conversations with their members' presence, and
 * the open conversation with its messages, read receipts, typing and composer.
 */

import type * as Sdk from "../client/relais.ts";
import type { FrameOf } from "../client/types.ts";
import { $, el, timeOf } from "./_dom.ts";
import type { DemoSession } from "./demo_session.ts";
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

/** The chat panel of the demo page. */
export interface DemoChat {
  /** Starts over for the user now logged in: nothing listed or open, their peers offered. */
  reset(): void;
  /** Lists the conversations again; hides the panel when messaging is off. */
  refresh(): void;
  /** Shows what `client` delivers: messages, read receipts, typing, presence. */
  listen(client: Sdk.RelaisClient): void;
  /** Shows the panel, or says that messaging is unavailable. */
  available(on: boolean): void;
  /** Renders the list and the open conversation (after a language switch, say). */
  render(): void;
}

/** The chat panel, with its forms wired. */
export function createDemoChat(session: DemoSession): DemoChat {
  const { t } = session.language;
  let conversations: ConversationSummary[] = [];
  const presence = new Map<string, string>();
  let current: ConversationView | undefined;
  const messages = new Map<number, Message>();
  const typingUntil = new Map<string, number>();
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;

  function available(on: boolean) {
    $("chat-on").hidden = !on;
    $("chat-off").hidden = on;
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 200);
  }

  function refresh() {
    const client = session.relais;
    client?.conversations<{ conversations: ConversationSummary[] }>().then((list) => {
      if (client !== session.relais) return;
      available(true);
      conversations = list.conversations;
      for (const c of conversations) {
        for (const [user, status] of Object.entries(c.presence ?? {})) presence.set(user, status);
      }
      renderConversations();
    }).catch((error: { status?: number }) => {
      if (error.status === 404 || error.status === 403) available(false);
      else session.notice(String(error));
    });
  }

  const othersOf = (members: string[]) => members.filter((m) => m !== session.me);

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

  async function openConversation(id: string) {
    const relais = session.relais;
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
    const relais = session.relais;
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
      if (frame.from !== session.me) markRead();
      typingUntil.delete(frame.from);
      renderTyping();
    }
    scheduleRefresh();
  }

  function renderConversationTitle() {
    if (!current) return;
    const others = othersOf(current.members.map((m) => m.id));
    const who = others.map((u) => `${u} (${t(`presence.${presence.get(u) ?? "offline"}` as Key)})`);
    $("conversation-title").textContent = current.title ?? who.join(", ");
  }

  function renderMessages() {
    if (!current) return;
    const me = session.me;
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
          `${m.from === me ? t("chat.you") : m.from} · ${timeOf(m.at, session.language.lang())}${
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

  $("new-conversation").addEventListener("submit", async (event) => {
    event.preventDefault();
    const peer = $<HTMLSelectElement>("peer").value;
    const res = await session.post("/demo/conversations", { with: peer });
    if (!res.ok) return;
    const conversation = await res.json() as { id: string };
    refresh();
    await openConversation(conversation.id);
  });
  $("compose").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $<HTMLInputElement>("message");
    const text = input.value.trim();
    const relais = session.relais;
    if (!text || !current || !relais) return;
    input.value = "";
    try {
      await relais.send(current.id, text);
    } catch (e) {
      session.notice(String(e));
      input.value = text;
    }
  });
  $("message").addEventListener("input", () => {
    if (current && session.relais) void session.relais.typing(current.id).catch(() => {});
  });
  document.addEventListener("visibilitychange", markRead);

  return {
    reset() {
      conversations = [];
      current = undefined;
      messages.clear();
      $("peer").replaceChildren(
        ...DEMO_USERS.filter((u) => u !== session.me).map((u) => el("option", { value: u }, u)),
      );
    },
    refresh,
    listen(client) {
      client.on("msg", onMessage);
      client.on("receipt", (frame) => {
        const member = current?.members.find((m) => m.id === frame.user);
        if (current?.id === frame.conversation && member) {
          member.read = Math.max(member.read, frame.seq);
          renderMessages();
        }
      });
      client.on("typing", (frame) => {
        if (frame.user === session.me || frame.conversation !== current?.id) return;
        typingUntil.set(frame.user, Date.now() + 4000);
        renderTyping();
        setTimeout(renderTyping, 4100);
      });
      client.on("presence", (frame) => {
        presence.set(frame.user, frame.status);
        renderConversations();
        renderConversationTitle();
      });
    },
    available,
    render() {
      renderConversations();
      renderConversationTitle();
      renderMessages();
      renderTyping();
    },
  };
}
