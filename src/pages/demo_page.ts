/** The demo page (development only): a demo user's inbox, conversations and live events. */

import { DEMO_USERS } from "./demo_users.ts";
import { escapeHtml, page } from "./layout.ts";

/** The HTML of `GET /` in development. */
export function demoPage(): string {
  const users = DEMO_USERS.map((u) => `<option value="${u}">${escapeHtml(u)}</option>`).join("");
  return page({
    title: "relais — démo",
    subtitleKey: "demo.subtitle",
    script: "/assets/demo.js",
    body: `<main id="main" class="grid demo">
  <section class="card" id="connect" aria-labelledby="connect-title">
    <h2 id="connect-title" data-i18n="connect.title"></h2>
    <form id="login">
      <label for="user" data-i18n="connect.user"></label>
      <select id="user" name="user">${users}</select>
      <fieldset>
        <legend data-i18n="connect.transports"></legend>
        <label><input type="checkbox" name="transport" value="ws" checked> WebSocket</label>
        <label><input type="checkbox" name="transport" value="sse" checked> SSE</label>
        <label><input type="checkbox" name="transport" value="poll" checked> <span data-i18n="connect.poll"></span></label>
      </fieldset>
      <div class="row">
        <button type="submit" class="primary" id="connect-button" data-i18n="connect.connect"></button>
        <button type="button" id="disconnect" disabled data-i18n="connect.disconnect"></button>
      </div>
    </form>
    <p class="status" role="status" aria-live="polite">
      <span class="dot" id="status-dot" data-state="idle" aria-hidden="true"></span>
      <span id="status" data-state="idle" data-i18n="state.idle"></span>
    </p>
    <p class="note" id="notice" role="alert" hidden></p>
  </section>

  <section class="card" id="inbox" aria-labelledby="inbox-title">
    <div class="card-head">
      <h2 id="inbox-title"><span data-i18n="inbox.title"></span>
        <span class="badge" id="unread" data-count="0">0</span></h2>
      <div class="row">
        <button type="button" id="send-test" disabled data-i18n="inbox.sendTest"></button>
        <button type="button" id="read-all" disabled data-i18n="inbox.readAll"></button>
        <button type="button" id="enable-push" disabled data-i18n="inbox.push"></button>
      </div>
    </div>
    <ol class="list" id="notifications" aria-live="polite"></ol>
    <p class="empty" id="inbox-empty" data-i18n="inbox.empty"></p>
  </section>

  <section class="card wide" id="chat" aria-labelledby="chat-title">
    <h2 id="chat-title" data-i18n="chat.title"></h2>
    <p class="note" id="chat-off" hidden data-i18n="chat.unavailable"></p>
    <div class="chat" id="chat-on">
      <div class="chat-side">
        <form id="new-conversation" class="row">
          <label for="peer" data-i18n="chat.with"></label>
          <select id="peer"></select>
          <button type="submit" id="open-conversation" disabled data-i18n="chat.start"></button>
        </form>
        <ul class="list" id="conversations"></ul>
        <p class="empty" id="conversations-empty" data-i18n="chat.none"></p>
      </div>
      <div id="conversation" hidden>
        <h3 id="conversation-title"></h3>
        <ol class="messages" id="messages" aria-live="polite"></ol>
        <p class="typing" id="typing" aria-live="polite"></p>
        <form id="compose" class="row">
          <label for="message" class="sr-only" data-i18n="chat.message"></label>
          <input id="message" autocomplete="off" maxlength="4000" data-i18n-placeholder="chat.placeholder">
          <button type="submit" class="primary" data-i18n="chat.send"></button>
        </form>
      </div>
    </div>
  </section>

  <section class="card" id="live" aria-labelledby="live-title">
    <div class="card-head">
      <h2 id="live-title" data-i18n="live.title"></h2>
      <button type="button" id="send-realtime" disabled data-i18n="live.simulate"></button>
    </div>
    <ol class="log" id="events" aria-live="polite"></ol>
    <p class="empty" id="events-empty" data-i18n="live.empty"></p>
  </section>
</main>`,
  });
}
