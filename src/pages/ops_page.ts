/** The ops page: live actors, kill switches, dead letters, the ingest and a metrics summary. */

import { ACTOR_KINDS } from "../../actors/kinds.ts";
import { FEATURES } from "../controls/control.ts";
import { page } from "./layout.ts";
import { opsChartsSection, opsLookupSection } from "./ops_sections.ts";

/** The HTML of `GET /ops`. */
export function opsPage(): string {
  const features = FEATURES
    .map((f) => `<label><input type="checkbox" name="feature" value="${f}"> ${f}</label>`)
    .join("\n        ");
  const kinds = ACTOR_KINDS.map((k) => `<option value="${k}">${k}</option>`).join("\n          ");
  return page({
    title: "relais — ops",
    subtitleKey: "ops.subtitle",
    script: "/assets/ops.js",
    styles: ["/assets/charts.css"],
    body: `<main id="main" class="grid">
  <section class="card wide" id="access" aria-labelledby="access-title">
    <h2 id="access-title" data-i18n="ops.key"></h2>
    <form id="key-form" class="row">
      <label for="admin-key" class="sr-only" data-i18n="ops.key"></label>
      <input type="password" id="admin-key" autocomplete="off" spellcheck="false" size="40" aria-describedby="key-help">
      <button type="submit" class="primary" data-i18n="ops.open"></button>
      <button type="button" id="forget-key" data-i18n="ops.forget"></button>
      <label><input type="checkbox" id="auto-refresh" checked> <span data-i18n="ops.auto"></span></label>
      <button type="button" id="refresh" data-i18n="ops.refresh"></button>
    </form>
    <p class="meta" id="key-help" data-i18n="ops.keyHelp"></p>
    <p class="status" id="ops-status" role="status" aria-live="polite"></p>
  </section>

  <section class="card wide" id="metrics" aria-labelledby="metrics-title" hidden>
    <h2 id="metrics-title" data-i18n="ops.metrics"></h2>
    <dl class="stats" id="stats"></dl>
  </section>

${opsChartsSection()}

${opsLookupSection()}

  <section class="card wide" id="actors" aria-labelledby="actors-title" hidden>
    <div class="card-head">
      <h2 id="actors-title"><span data-i18n="ops.actors"></span> <span class="badge neutral" id="actor-count" data-count="0">0</span></h2>
      <div class="row">
        <label for="actor-kind" data-i18n="ops.kind"></label>
        <select id="actor-kind">
          <option value="" data-i18n="ops.all"></option>
          ${kinds}
        </select>
      </div>
    </div>
    <table>
      <thead><tr><th scope="col" data-i18n="ops.kind"></th><th scope="col" data-i18n="ops.id"></th><th scope="col" data-i18n="ops.status"></th><th scope="col" data-i18n="ops.state"></th><th scope="col"><span class="sr-only" data-i18n="ops.details"></span></th></tr></thead>
      <tbody id="actor-rows"></tbody>
    </table>
    <p class="empty" id="actors-empty" data-i18n="ops.noActors"></p>
    <div id="actor-detail" hidden>
      <h3 id="actor-detail-title"></h3>
      <pre id="actor-detail-body" tabindex="0"></pre>
    </div>
  </section>

  <section class="card wide" id="controls" aria-labelledby="controls-title" hidden>
    <h2 id="controls-title" data-i18n="ops.controls"></h2>
    <p class="note" id="controls-off" hidden data-i18n="ops.controlsOff"></p>
    <div id="controls-on">
      <table>
        <thead><tr><th scope="col" data-i18n="ops.scope"></th><th scope="col" data-i18n="ops.features"></th><th scope="col" data-i18n="ops.reason"></th><th scope="col" data-i18n="ops.until"></th><th scope="col"><span class="sr-only" data-i18n="ops.remove"></span></th></tr></thead>
        <tbody id="control-rows"></tbody>
      </table>
      <p class="empty" id="controls-empty" data-i18n="ops.noControls"></p>
      <form id="control-form">
        <div class="row">
          <label for="scope-type" data-i18n="ops.scope"></label>
          <select id="scope-type">
            <option value="SYSTEM">SYSTEM</option><option value="STRUCTURE">STRUCTURE</option>
            <option value="ROLE">ROLE</option><option value="CATEGORY">CATEGORY</option>
            <option value="USER">USER</option>
          </select>
          <label for="scope-id" data-i18n="ops.scopeId"></label>
          <input id="scope-id" autocomplete="off" disabled>
        </div>
        <fieldset>
          <legend data-i18n="ops.features"></legend>
        ${features}
        </fieldset>
        <div class="row">
          <label for="reason" data-i18n="ops.reason"></label>
          <input id="reason" required maxlength="500" size="30">
          <label for="until" data-i18n="ops.until"></label>
          <input type="datetime-local" id="until">
          <button type="submit" class="primary" data-i18n="ops.add"></button>
        </div>
        <p class="error" id="control-error" role="alert" hidden></p>
      </form>
    </div>
  </section>

  <section class="card wide" id="dead-letters" aria-labelledby="dead-title" hidden>
    <h2 id="dead-title"><span data-i18n="ops.deadLetters"></span> <span class="badge" id="dead-count" data-count="0">0</span></h2>
    <table>
      <thead><tr><th scope="col" data-i18n="ops.id"></th><th scope="col" data-i18n="ops.user"></th><th scope="col">seq</th><th scope="col" data-i18n="ops.attempts"></th><th scope="col" data-i18n="ops.reason"></th><th scope="col" data-i18n="ops.at"></th></tr></thead>
      <tbody id="dead-rows"></tbody>
    </table>
    <p class="empty" id="dead-empty" data-i18n="ops.noDeadLetters"></p>
  </section>

  <section class="card wide" id="retention" aria-labelledby="retention-title" hidden>
    <h2 id="retention-title"><span data-i18n="ops.retention"></span> <span class="badge neutral" id="retention-state"></span></h2>
    <p class="meta" data-i18n="ops.retentionHelp"></p>
    <dl class="stats" id="retention-stats"></dl>
    <p class="error" id="retention-error" role="alert" hidden></p>
  </section>

  <section class="card wide" id="ingest" aria-labelledby="ingest-title" hidden>
    <h2 id="ingest-title"><span data-i18n="ops.ingest"></span> <span class="badge neutral" id="ingest-status"></span></h2>
    <p class="note" id="ingest-off" hidden data-i18n="ops.ingestOff"></p>
    <div id="ingest-on">
      <dl class="stats" id="ingest-stats"></dl>
      <p class="error" id="ingest-error" role="alert" hidden></p>
      <table>
        <thead><tr><th scope="col" data-i18n="ops.ingestEntry"></th><th scope="col" data-i18n="ops.reason"></th><th scope="col" data-i18n="ops.ingestDetail"></th></tr></thead>
        <tbody id="ingest-dead-rows"></tbody>
      </table>
      <p class="empty" id="ingest-dead-empty" data-i18n="ops.noDeadLetters"></p>
    </div>
  </section>
</main>`,
  });
}
