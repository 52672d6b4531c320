/**
 * Mail templates: one layout for every mail, HTML and text from the same content, in
 * French (default) and English.
 *
 * A notification's content comes from its payload: a known `template` (the platform's
 * `ASK_FOR_FEEDBACK` and `ACTIVITY_MODIFIED`) with `parameters`, or rendered text per
 * locale (`{"fr": {"title", "body"}, "en": {...}, "url"}`).
 */

import type { Locale } from "../directory/directory.ts";
import type { Envelope } from "../schemas/envelope.ts";

/** A rendered mail body. */
export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

/** What a notification says, in one locale. */
export interface Content {
  title: string;
  body: string;
  /** An absolute http(s) link to the item, if any. */
  url?: string;
}

/** Links every mail carries. */
export interface MailLinks {
  /** Base for relative payload URLs (the portfolio's address). */
  appUrl?: string;
  /** The unsubscribe page of this mail. */
  unsubscribeUrl: string;
}

type Params = Record<string, unknown>;

const FIELD_LABELS: Record<Locale, Record<string, string>> = {
  fr: {
    TITLE: "titre",
    DESCRIPTION: "description",
    START_DATE: "date de début",
    END_DATE: "date de fin",
    INSTRUCTIONS: "consignes",
    ATTACHMENTS: "pièces jointes",
  },
  en: {
    TITLE: "title",
    DESCRIPTION: "description",
    START_DATE: "start date",
    END_DATE: "end date",
    INSTRUCTIONS: "instructions",
    ATTACHMENTS: "attachments",
  },
};

const text = (value: unknown, fallback = "") =>
  typeof value === "string"
    ? value.slice(0, 500)
    : typeof value === "number"
    ? String(value)
    : fallback;

function fieldList(fields: unknown, locale: Locale): string {
  if (!Array.isArray(fields)) return "";
  return fields.filter((f) => typeof f === "string").slice(0, 20)
    .map((f: string) =>
      (Object.hasOwn(FIELD_LABELS[locale], f) ? FIELD_LABELS[locale][f] : undefined) ??
        f.toLowerCase().replaceAll("_", " ")
    )
    .join(", ");
}

/** Templates of the platform's notification types, by locale. */
const TEMPLATES: Record<string, Record<Locale, (p: Params) => Omit<Content, "url">>> = {
  ASK_FOR_FEEDBACK: {
    fr: (p) => ({
      title: `Demande de retour sur « ${text(p.activityTitle, "une activité")} »`,
      body: `${text(p.studentFirstName)} ${text(p.studentLastName)}`.trim() +
        ` vous demande un retour sur l’activité « ${text(p.activityTitle, "sans titre")} ».`,
    }),
    en: (p) => ({
      title: `Feedback requested on “${text(p.activityTitle, "an activity")}”`,
      body: `${text(p.studentFirstName)} ${text(p.studentLastName)}`.trim() +
        ` asked you for feedback on the activity “${text(p.activityTitle, "untitled")}”.`,
    }),
  },
  ACTIVITY_MODIFIED: {
    fr: (p) => {
      const fields = fieldList(p.updatedFields, "fr");
      return {
        title: `Activité modifiée : ${text(p.activityTitle, "sans titre")}`,
        body: `L’activité « ${text(p.activityTitle, "sans titre")} » a été modifiée` +
          (fields ? ` (${fields}).` : "."),
      };
    },
    en: (p) => {
      const fields = fieldList(p.updatedFields, "en");
      return {
        title: `Activity updated: ${text(p.activityTitle, "untitled")}`,
        body: `The activity “${text(p.activityTitle, "untitled")}” was updated` +
          (fields ? ` (${fields}).` : "."),
      };
    },
  },
};

const STRINGS = {
  fr: {
    greeting: (name?: string) => (name ? `Bonjour ${name},` : "Bonjour,"),
    open: "Ouvrir dans le portfolio",
    footer: "Vous recevez ce message selon vos préférences de notification.",
    unsubscribe: "Ne plus recevoir ces e-mails",
    digestSubject: (n: number, period: string) =>
      `${period === "daily" ? "Votre résumé du jour" : "Votre résumé"} : ${n} notification${
        n > 1 ? "s" : ""
      }`,
    digestIntro: (n: number) =>
      n > 1 ? `Voici vos ${n} notifications non lues.` : "Voici votre notification non lue.",
    more: (n: number) => `… et ${n} de plus dans le portfolio.`,
    untitled: "Nouvelle notification",
  },
  en: {
    greeting: (name?: string) => (name ? `Hello ${name},` : "Hello,"),
    open: "Open in the portfolio",
    footer: "You receive this message according to your notification preferences.",
    unsubscribe: "Stop these emails",
    digestSubject: (n: number, period: string) =>
      `${period === "daily" ? "Your daily digest" : "Your digest"}: ${n} notification${
        n > 1 ? "s" : ""
      }`,
    digestIntro: (n: number) =>
      n > 1 ? `Here are your ${n} unread notifications.` : "Here is your unread notification.",
    more: (n: number) => `… and ${n} more in the portfolio.`,
    untitled: "New notification",
  },
} as const;

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(value: string): string {
  return value.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

/** An absolute http(s) URL for `raw` (relative ones against `base`), or `undefined`. */
export function safeUrl(raw: unknown, base?: string): string | undefined {
  if (typeof raw !== "string" || raw.length > 2000) return undefined;
  try {
    const url = base ? new URL(raw, base) : new URL(raw);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/** What a notification says in `locale`, falling back to the other locale, then its topic. */
export function contentOf(envelope: Envelope, locale: Locale, appUrl?: string): Content {
  const payload = envelope.payload as Params;
  const name = text(payload.template) || envelope.metadata.topic;
  const template = Object.hasOwn(TEMPLATES, name) ? TEMPLATES[name] : undefined;
  const url = safeUrl(payload.url, appUrl);
  if (template) {
    const params = (typeof payload.parameters === "object" && payload.parameters !== null
      ? payload.parameters
      : {}) as Params;
    return { ...template[locale](params), ...(url ? { url } : {}) };
  }
  const other: Locale = locale === "fr" ? "en" : "fr";
  for (const l of [locale, other]) {
    const localized = payload[l] as Params | undefined;
    if (typeof localized === "object" && localized !== null && text(localized.title)) {
      const own = safeUrl(localized.url, appUrl) ?? url;
      return {
        title: text(localized.title),
        body: typeof localized.body === "string" ? localized.body.slice(0, 5000) : "",
        ...(own ? { url: own } : {}),
      };
    }
  }
  return {
    title: STRINGS[locale].untitled,
    body: envelope.metadata.topic,
    ...(url ? { url } : {}),
  };
}

interface Section {
  title: string;
  body: string;
  url?: string;
}

/** The one layout: a heading per section, a button per link, the unsubscribe footer. */
function layout(
  locale: Locale,
  options: { subject: string; name?: string; intro?: string; sections: Section[]; outro?: string },
  links: MailLinks,
): RenderedMail {
  const s = STRINGS[locale];
  // French puts a space before a colon.
  const sep = locale === "fr" ? " : " : ": ";
  const textParts = [s.greeting(options.name), ""];
  if (options.intro) textParts.push(options.intro, "");
  for (const section of options.sections) {
    textParts.push(section.title);
    if (section.body) textParts.push(section.body);
    if (section.url) textParts.push(`${s.open}${sep}${section.url}`);
    textParts.push("");
  }
  if (options.outro) textParts.push(options.outro, "");
  textParts.push("-- ", s.footer, `${s.unsubscribe}${sep}${links.unsubscribeUrl}`);

  const htmlSections = options.sections.map((section) =>
    `<h2 style="font-size:17px;margin:24px 0 8px">${escapeHtml(section.title)}</h2>` +
    (section.body
      ? `<p style="margin:0 0 12px;line-height:1.5">${escapeHtml(section.body)}</p>`
      : "") +
    (section.url
      ? `<p style="margin:0 0 12px"><a href="${
        escapeHtml(section.url)
      }" style="background:#1d4ed8;color:#fff;padding:8px 14px;border-radius:4px;text-decoration:none">${
        escapeHtml(s.open)
      }</a></p>`
      : "")
  ).join("\n");
  const html = `<!doctype html>
<html lang="${locale}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${
    escapeHtml(options.subject)
  }</title></head>
<body style="margin:0;padding:0;background:#f4f4f5;font-family:Arial,Helvetica,sans-serif;color:#18181b">
<div style="max-width:600px;margin:0 auto;padding:24px;background:#ffffff">
<p style="margin:0 0 12px">${escapeHtml(s.greeting(options.name))}</p>
${
    options.intro
      ? `<p style="margin:0 0 12px">${escapeHtml(options.intro)}</p>\n`
      : ""
  }${htmlSections}
${
    options.outro
      ? `<p style="margin:16px 0 0">${escapeHtml(options.outro)}</p>\n`
      : ""
  }<hr style="border:none;border-top:1px solid #e4e4e7;margin:24px 0 12px">
<p style="font-size:12px;color:#71717a;margin:0">${escapeHtml(s.footer)} <a href="${
    escapeHtml(links.unsubscribeUrl)
  }" style="color:#71717a">${escapeHtml(s.unsubscribe)}</a></p>
</div>
</body>
</html>
`;
  return { subject: options.subject, text: textParts.join("\n") + "\n", html };
}

/** Renders one notification for a user. */
export function renderNotification(
  envelope: Envelope,
  options: { locale: Locale; name?: string },
  links: MailLinks,
): RenderedMail {
  const content = contentOf(envelope, options.locale, links.appUrl);
  return layout(options.locale, {
    subject: content.title,
    ...(options.name ? { name: options.name } : {}),
    sections: [content],
  }, links);
}

/** How many items a digest lists; the rest are counted. */
export const DIGEST_MAX_LISTED = 20;

/** Renders a digest of several notifications for a user. */
export function renderDigest(
  envelopes: Envelope[],
  options: { locale: Locale; name?: string; period: "hourly" | "daily" },
  links: MailLinks,
): RenderedMail {
  const s = STRINGS[options.locale];
  const listed = envelopes.slice(0, DIGEST_MAX_LISTED);
  const more = envelopes.length - listed.length;
  return layout(options.locale, {
    subject: s.digestSubject(envelopes.length, options.period),
    ...(options.name ? { name: options.name } : {}),
    intro: s.digestIntro(envelopes.length),
    sections: listed.map((e) => contentOf(e, options.locale, links.appUrl)),
    ...(more > 0 ? { outro: s.more(more) } : {}),
  }, links);
}
