/**
 * Mail links and ops: the unsubscribe page behind every mail's `List-Unsubscribe` link
 * (a GET shows a confirmation, a POST — the button, or a mail client's one-click —
 * turns email off for the sources of that mail), and the mail dead letters (admin).
 */

import { Hono } from "hono";
import * as v from "valibot";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { AppError } from "../src/errors.ts";
import type { Directory } from "../src/directory/directory.ts";
import type { MailQueue } from "../src/mail/mail_queue.ts";
import { escapeHtml } from "../src/mail/templates.ts";
import type { UnsubscribeClaim, UnsubscribeTokens } from "../src/mail/unsubscribe.ts";
import { DEFAULT_PREFERENCES, type Preferences } from "../src/preferences/preferences.ts";
import type { PreferencesStore } from "../src/preferences/preferences_store.ts";
import { describe } from "../src/openapi.ts";
import { adminLimit, validate } from "../src/validate.ts";

/** Query of `GET /v1/admin/mail/dead-letters`. */
export const MailDeadLettersQuerySchema = v.object({
  limit: adminLimit,
});

/** Dependencies of {@linkcode createMailRoutes}. */
export interface MailRoutesDeps {
  keys: ServiceKeys;
  tokens: UnsubscribeTokens;
  preferences: PreferencesStore;
  queue: MailQueue;
  /**
   * Who has an entry: mail goes only to the address of one, so a link of a user who has
   * none (erased since the mail left) has nothing left to stop, and writes nothing.
   */
  directory: Pick<Directory, "get">;
}

/** Turns email off for the sources of a claim, keeping everything else. */
export function withoutEmail(
  current: Preferences | undefined,
  claim: UnsubscribeClaim,
): Preferences {
  const prefs = current ?? DEFAULT_PREFERENCES;
  const sources = { ...prefs.sources };
  for (const source of claim.sources) {
    // A source named `constructor` or `__proto__` is read and written as an own key.
    const before = Object.hasOwn(sources, source) ? sources[source] : undefined;
    Object.defineProperty(sources, source, {
      value: {
        // A source without an entry has every channel: only email is taken away.
        channels: (before?.channels ?? ["inapp", "push"]).filter((c) => c !== "email"),
        digest: before?.digest ?? "off",
      },
      writable: true,
      enumerable: true,
      configurable: true,
    });
  }
  return { ...prefs, sources };
}

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${
    escapeHtml(title)
  }</title></head><body style="font-family:Arial,Helvetica,sans-serif;max-width:560px;margin:40px auto;padding:0 16px">${body}</body></html>`;
}

/** `/v1/unsubscribe` and `/v1/admin/mail/dead-letters`. */
export function createMailRoutes(deps: MailRoutesDeps) {
  async function claimOf(token: string | undefined): Promise<UnsubscribeClaim> {
    const claim = token ? await deps.tokens.verify(token) : undefined;
    if (!claim) throw new AppError("invalid_request", "Invalid or expired unsubscribe link");
    return claim;
  }

  return new Hono<AppEnv>()
    .get(
      "/v1/unsubscribe",
      describe({
        summary: "The unsubscribe page of a mail's List-Unsubscribe link (?t=token)",
        tags: ["mail"],
        security: "none",
        responses: {
          200: { description: "A confirmation page" },
          400: { description: "Bad link" },
        },
      }),
      async (c) => {
        const token = c.req.query("t");
        const claim = await claimOf(token);
        const sources = claim.sources.map((s) => `<code>${escapeHtml(s)}</code>`).join(", ");
        return c.html(page(
          "Se désabonner · Unsubscribe",
          `<h1>Se désabonner · Unsubscribe</h1>
<p>Ne plus recevoir d’e-mails pour : ${sources}.<br>Stop emails for: ${sources}.</p>
<form method="post" action="/v1/unsubscribe?t=${escapeHtml(token!)}">
<button type="submit">Confirmer · Confirm</button></form>
<p>Les notifications dans le portfolio continuent. · Notifications in the portfolio go on.</p>`,
        ));
      },
    )
    .post(
      "/v1/unsubscribe",
      describe({
        summary: "One-click unsubscribe (RFC 8058): email off for the mail's sources (?t=token)",
        tags: ["mail"],
        security: "none",
        responses: { 200: { description: "Done" }, 400: { description: "Bad link" } },
      }),
      async (c) => {
        const claim = await claimOf(c.req.query("t"));
        // An erased user's old link must not bring back a record naming them.
        if (await deps.directory.get(claim.user)) {
          await deps.preferences.update(claim.user, (current) => withoutEmail(current, claim));
        }
        return c.html(page(
          "Désabonné · Unsubscribed",
          "<h1>Désabonné · Unsubscribed</h1><p>Vous ne recevrez plus ces e-mails. · You will not receive these emails any more.</p>",
        ));
      },
    )
    .use("/v1/admin/mail/*", requireScope(deps.keys, "admin"))
    .get(
      "/v1/admin/mail/dead-letters",
      describe({
        summary: "Mails given up after their attempts, newest first",
        tags: ["ops"],
        security: "admin",
        responses: { 200: { description: "Mail dead letters" } },
      }),
      validate("query", MailDeadLettersQuerySchema),
      async (c) => {
        const items = await deps.queue.listDeadLetters(c.req.valid("query").limit);
        return c.json({ count: items.length, items });
      },
    );
}
