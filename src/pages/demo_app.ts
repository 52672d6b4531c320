/// <reference lib="dom" />
/**
 * The demo page's script: logs a demo user in with a development token and shows what the
 * SDK delivers. It loads the SDK from `/sdk/relais.js`, exactly as an application would.
 *
 * This module connects and shows the connection; the panels are `demo_inbox.ts` (the
 * notifications and live events) and `demo_chat.ts` (the conversations), sharing the
 * session of `demo_session.ts`.
 */

import type * as Sdk from "../client/relais.ts";
import type { TransportKind } from "../client/types.ts";
import { $, setupLanguage } from "./_dom.ts";
import { createDemoChat } from "./demo_chat.ts";
import { createDemoInbox } from "./demo_inbox.ts";
import { createDemoSession } from "./demo_session.ts";
import { DEMO_USERS } from "./demo_users.ts";
import type { Key } from "./i18n.ts";

// A variable keeps the bundler from inlining the SDK: the page uses the served module.
const SDK_URL = "/sdk/relais.js";
const sdk = await import(SDK_URL) as typeof Sdk;

/** The buttons that only a connected user can use. */
const CONNECTED_BUTTONS = [
  "disconnect",
  "send-test",
  "read-all",
  "enable-push",
  "send-realtime",
  "open-conversation",
];

const session = createDemoSession(setupLanguage(() => renderAll()));
const t = session.language.t;
const inbox = createDemoInbox(session);
const chat = createDemoChat(session);
let status: Sdk.StatusChange = { state: "idle" };

function connect(user: string, transports: TransportKind[]) {
  session.relais?.close();
  session.me = user;
  inbox.reset();
  chat.reset();
  session.notice(undefined);
  const client = session.relais = sdk.createRelais({
    token: () => session.token(user),
    ...(transports.length > 0 ? { transports } : {}),
  });
  // For the console and for browser tests.
  (globalThis as { relais?: unknown }).relais = client;
  client.on("status", (s) => {
    status = s;
    renderStatus();
  });
  client.on("welcome", () => {
    inbox.refresh();
    chat.refresh();
  });
  client.on("resync", () => {
    session.notice(t("resync"));
    inbox.refresh();
  });
  inbox.listen(client);
  chat.listen(client);
  client.on("control", (frame) => {
    const off = frame.disabled.map((d) => `${d.feature} (${d.reason})`).join(", ");
    session.notice(off ? t("control.off", { features: off }) : undefined);
    if (!frame.features.messaging) chat.available(false);
  });
  client.connect();
  for (const id of CONNECTED_BUTTONS) $<HTMLButtonElement>(id).disabled = false;
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
  session.relais?.close();
  for (const id of CONNECTED_BUTTONS) $<HTMLButtonElement>(id).disabled = true;
});

// Web Push: this browser gets the user's notifications while no tab is connected.
$("enable-push").addEventListener("click", async () => {
  try {
    await session.relais?.subscribePush();
    session.notice(t("inbox.pushOn"));
  } catch (error) {
    session.notice(error instanceof Error ? error.message : String(error));
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
    user: session.me ?? "",
    delay: ((status.delayMs ?? 0) / 1000).toFixed(1),
  });
}

function renderAll() {
  renderStatus();
  inbox.render();
  chat.render();
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
