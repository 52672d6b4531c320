/// <reference lib="dom" />
/**
 * The demo page's session: the SDK client of the user logged in, the page language,
 * notices, and the development-only demo routes called as that user. The page's panels
 * share it.
 */

import type * as Sdk from "../client/relais.ts";
import { $, type Language } from "./_dom.ts";

/** What the demo page's panels share. */
export interface DemoSession {
  /** The client of the user logged in last, if any. */
  relais: Sdk.RelaisClient | undefined;
  /** The demo user logged in last. */
  me: string | undefined;
  /** The page language. */
  readonly language: Language;
  /** Shows a message for a while (errors, incomplete resumes, kill switches). */
  notice(text: string | undefined): void;
  /** A development token for a demo user, reused until it is about to expire. */
  token(user: string): Promise<string>;
  /** Calls a development-only demo route as the current user; a refusal shows as a notice. */
  post(path: string, body: unknown): Promise<Response>;
}

/** A session with nobody logged in yet. */
export function createDemoSession(language: Language): DemoSession {
  let token: { user: string; value: string; expiresAt: number } | undefined;
  let noticeTimer: ReturnType<typeof setTimeout> | undefined;

  const session: DemoSession = {
    relais: undefined,
    me: undefined,
    language,
    notice(text) {
      const node = $("notice");
      node.hidden = !text;
      node.textContent = text ?? "";
      clearTimeout(noticeTimer);
      if (text) noticeTimer = setTimeout(() => session.notice(undefined), 10_000);
    },
    async token(user) {
      if (token?.user === user && token.expiresAt > Date.now() + 60_000) return token.value;
      const res = await fetch(`/demo/token?user=${encodeURIComponent(user)}`, {
        cache: "no-store",
      });
      if (!res.ok) throw new Error(`No demo token for "${user}": status ${res.status}`);
      const body = await res.json() as { token: string; expires_at: string };
      token = { user, value: body.token, expiresAt: Date.parse(body.expires_at) };
      return body.token;
    },
    async post(path, body) {
      const res = await fetch(path, {
        method: "POST",
        headers: {
          authorization: `Bearer ${await session.token(session.me!)}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
      });
      if (!res.ok) session.notice(`${path}: ${res.status} ${await res.text()}`);
      return res;
    },
  };
  return session;
}
