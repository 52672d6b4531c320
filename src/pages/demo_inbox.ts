/// <reference lib="dom" />
/**
 * The demo page's notification list and live events: the inbox as the SDK lists it, kept
 * current from the frames that arrive between listings, with read and ack buttons.
 */

import type * as Sdk from "../client/relais.ts";
import type { EventFrame } from "../client/types.ts";
import { $, el, timeOf } from "./_dom.ts";
import type { DemoSession } from "./demo_session.ts";

/** The notification list and the live events of the demo page. */
export interface DemoInbox {
  /** Forgets the previous user's items and events. */
  reset(): void;
  /** Lists the inbox again. */
  refresh(): void;
  /** Shows what `client` delivers: events, updates that replace an item, summaries. */
  listen(client: Sdk.RelaisClient): void;
  /** Renders the list and the live events (after a language switch, say). */
  render(): void;
}

/** The inbox panel, with its buttons wired. */
export function createDemoInbox(session: DemoSession): DemoInbox {
  const { t } = session.language;
  const inbox = new Map<string, Sdk.InboxItem>();
  const acked = new Set<string>();
  let unread = 0;
  const liveEvents: { at: number; frame: EventFrame }[] = [];
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 150);
  }

  function refresh() {
    const client = session.relais;
    client?.notifications({ limit: 50 }).then((page) => {
      if (client !== session.relais) return;
      inbox.clear();
      for (const item of page.items) inbox.set(item.id, item);
      unread = page.unread_count;
      renderInbox();
    }).catch((e) => session.notice(String(e)));
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
      scheduleRefresh();
    }
  }

  function textOf(item: { metadata: { topic: string }; payload: unknown }) {
    const payload = (item.payload ?? {}) as Record<string, unknown>;
    const local = (payload[session.language.lang()] ?? payload.fr ?? payload.en) as
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
        await session.relais?.read(item.id);
        if (!item.read) unread = Math.max(0, unread - 1);
        item.read = true;
        renderInbox();
      });
      let ack: HTMLButtonElement | undefined;
      if (item.ack_required) {
        const done = acked.has(item.id);
        ack = el(
          "button",
          { type: "button", disabled: done },
          t(done ? "inbox.acked" : "inbox.ack"),
        );
        ack.addEventListener("click", async () => {
          await session.relais?.ack(item.id);
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

  function renderEvents() {
    $("events").replaceChildren(...liveEvents.map(({ at, frame }) => {
      const { metadata, payload } = frame.envelope;
      return el(
        "li",
        {},
        el("span", { class: "meta" }, `${timeOf(at, session.language.lang())} · ${metadata.type} `),
        el("code", {}, metadata.topic),
        metadata.operation ? ` ${metadata.operation} ` : " ",
        el("code", {}, JSON.stringify(payload).slice(0, 300)),
      );
    }));
    $("events-empty").hidden = liveEvents.length > 0;
  }

  $("read-all").addEventListener("click", async () => {
    await session.relais?.readAll();
    for (const item of inbox.values()) item.read = true;
    unread = 0;
    renderInbox();
  });
  $("send-test").addEventListener(
    "click",
    () => void session.post("/demo/events", { type: "NOTIFICATION" }),
  );
  $("send-realtime").addEventListener(
    "click",
    () => void session.post("/demo/events", { type: "REALTIME" }),
  );

  return {
    reset() {
      inbox.clear();
      acked.clear();
      unread = 0;
      liveEvents.length = 0;
    },
    refresh,
    listen(client) {
      client.on("event", onEvent);
      client.on("update", (frame) => {
        inbox.delete(frame.replaces.id);
        onEvent({ type: "event", seq: frame.seq, envelope: frame.envelope });
      });
      client.on("summary", () => refresh());
    },
    render() {
      renderInbox();
      renderEvents();
    },
  };
}
