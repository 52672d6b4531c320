/**
 * The mailer's work, as effects for the mailer actor: run the due tasks of the queue.
 *
 * For each due notification it decides, from the latest state, whether a mail goes out:
 * not when the user read the item in-app during the grace period, turned email off for
 * its source, or has no address; into the hourly or daily digest when the preferences say
 * so (unless HIGH); later when quiet hours are on (unless critical). A transport failure
 * stops the run (the relay is probably down) and retries the task with exponential
 * backoff, up to a dead letter. A task leaves the queue only after its mail was accepted,
 * and carries a stable Message-ID, so a crash never loses a mail; the one window where a
 * mail could go twice is a crash between the relay's acceptance and the next commit.
 *
 * In a cluster (`claimMs` set), right before a send the task is claimed: moved `claimMs`
 * ahead in one commit checked against the task as listed. Of two mailers running at once
 * (a handover between nodes) only one claims it, so only one sends it; a mailer that dies
 * after its claim leaves the task to be retried once the claim has passed. One node alone
 * runs one mailer: it claims nothing, and a restart retries at once.
 */

import type { MailRunOutput } from "../../actors/mailer.machine.ts";
import { backoffDelay } from "../backoff.ts";
import type { Directory, DirectoryEntry } from "../directory/directory.ts";
import {
  chooseChannels,
  isCritical,
  localeOf,
  nextDigestAt,
  quietUntil,
} from "../preferences/preferences.ts";
import type { PreferencesStore } from "../preferences/preferences_store.ts";
import type { Envelope } from "../schemas/envelope.ts";
import type { EventStore, StreamItem, StreamStore } from "../store/store.ts";
import type { DigestItem, MailQueue, QueuedTask } from "./mail_queue.ts";
import { renderDigest, type RenderedMail, renderNotification } from "./templates.ts";
import { MailSendError, type MailTransport } from "./transport.ts";
import type { UnsubscribeTokens } from "./unsubscribe.ts";

/** How many digest items one digest mail covers (and counts); the rest go in the next. */
export const DIGEST_MAX_ITEMS = 100;
/** How long a claimed task stays out of other runs: well above a send's timeouts. */
export const CLAIM_MS = 5 * 60_000;
/** The longest wait between two attempts of one mail. */
const MAX_RETRY_MS = 6 * 3_600_000;

/** Dependencies of {@linkcode createMailer}. */
export interface MailerDeps {
  queue: MailQueue;
  store: Pick<StreamStore, "findItem"> & Pick<EventStore, "getEnvelope">;
  directory: Directory;
  preferences: PreferencesStore;
  transport: MailTransport;
  tokens: UnsubscribeTokens;
  from: string;
  /** Where `List-Unsubscribe` links point: relais's public address. */
  publicUrl: string;
  /** The portfolio's address, for relative links of payloads. */
  appUrl?: string;
  /** Local time ("HH:MM") of the daily digest. */
  dailyDigestAt: string;
  retryBaseMs: number;
  /** Attempts before a mail becomes a dead letter. */
  maxAttempts: number;
  now?: () => number;
  onError?(message: string, error: unknown): void;
  /**
   * The `email` kill switch: false while mail to this person is switched off; the task
   * then ends without a mail (the item stays in the inbox). Absent: always allowed.
   */
  emailAllowed?(person: DirectoryEntry): boolean;
  /**
   * Cluster mode: how long a task is claimed for before its send ({@linkcode CLAIM_MS});
   * absent, one mailer alone drains the queue and claims nothing.
   */
  claimMs?: number;
}

/** What one run did (the mailer actor's view of a run). */
export type MailRun = MailRunOutput;

/** The mailer's effects. */
export interface Mailer {
  /** Runs the due tasks, at most `limit` of them. */
  runDue(limit: number): Promise<MailRun>;
  /** The earliest due time and the queue depth, without running anything. */
  peek(): Promise<{ nextDueAt?: number; depth: number }>;
  readonly transportKind: string;
}

type Outcome = "sent" | "skipped" | "deferred" | "lost";

/** Creates the mailer's effects. */
export function createMailer(deps: MailerDeps): Mailer {
  const now = deps.now ?? Date.now;
  const domain = /@([^>\s]+)>?\s*$/.exec(deps.from)?.[1] ?? "relais.invalid";

  async function messageId(taskId: string, extra = ""): Promise<string> {
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${taskId}\n${extra}`)),
    );
    const hex = [...digest.slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");
    return `<${hex}@${domain}>`;
  }

  async function deliver(
    entry: DirectoryEntry,
    rendered: RenderedMail,
    id: string,
    unsubscribeUrl: string,
  ) {
    await deps.transport.send({
      messageId: id,
      from: deps.from,
      to: { ...(entry.name ? { name: entry.name } : {}), address: entry.email! },
      subject: rendered.subject,
      text: rendered.text,
      html: rendered.html,
      headers: {
        "List-Unsubscribe": `<${unsubscribeUrl}>`,
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Auto-Submitted": "auto-generated",
      },
    });
  }

  async function unsubscribeUrl(user: string, sources: string[]) {
    const token = await deps.tokens.sign({ user, sources: [...new Set(sources)] });
    return `${deps.publicUrl.replace(/\/$/, "")}/v1/unsubscribe?t=${token}`;
  }

  const stillUnseen = (item: StreamItem | undefined, at: number) =>
    item !== undefined && item.readAt === undefined && item.replacedBy === undefined &&
    (item.exp === undefined || item.exp > at);

  const allowed = (person: DirectoryEntry) => deps.emailAllowed?.(person) ?? true;

  /** `current.entry` is the task as last committed: its claim, once claimed. */
  async function runItem(current: { entry: QueuedTask }): Promise<Outcome> {
    const entry = current.entry;
    const task = entry.task;
    if (task.kind !== "item") return "skipped";
    const at = now();
    const [envelope, item, person, prefs] = await Promise.all([
      deps.store.getEnvelope(task.event),
      deps.store.findItem(task.user, task.event),
      deps.directory.get(task.user),
      deps.preferences.get(task.user),
    ]);
    if (!envelope || !stillUnseen(item, at) || !person?.email || !allowed(person)) {
      return await deps.queue.complete(entry) ? "skipped" : "lost";
    }
    const choice = chooseChannels(envelope, prefs);
    if (!choice.email) return await deps.queue.complete(entry) ? "skipped" : "lost";
    const critical = isCritical(envelope.metadata);
    const high = envelope.metadata.priority === "HIGH";
    if (choice.digest !== "off" && !high && !critical) {
      const digestAt = nextDigestAt(choice.digest, at, {
        timezone: prefs?.timezone ?? "Europe/Paris",
        dailyAt: deps.dailyDigestAt,
      });
      const moved = await deps.queue.toDigest(entry, choice.digest, digestAt, {
        event: task.event,
        seq: task.seq,
        source: envelope.metadata.source,
        at,
      });
      return moved ? "deferred" : "lost";
    }
    const quietEnd = critical ? undefined : quietUntil(prefs, at);
    if (quietEnd !== undefined) {
      return await deps.queue.reschedule(entry, quietEnd, task) ? "deferred" : "lost";
    }
    const locale = localeOf(prefs, person.locale);
    const url = await unsubscribeUrl(task.user, [envelope.metadata.source]);
    const rendered = renderNotification(
      envelope,
      { locale, ...(person.name ? { name: person.name } : {}) },
      { unsubscribeUrl: url, ...(deps.appUrl ? { appUrl: deps.appUrl } : {}) },
    );
    const claimed = await claim(current, at);
    if (!claimed) return "lost";
    await deliver(person, rendered, await messageId(task.id), url);
    return await deps.queue.complete(claimed) ? "sent" : "lost";
  }

  /** The task to send, claimed first in a cluster; `undefined` when another mailer has it. */
  async function claim(current: { entry: QueuedTask }, at: number) {
    if (deps.claimMs === undefined) return current.entry;
    const claimed = await deps.queue.claim(current.entry, at + deps.claimMs);
    if (claimed) current.entry = claimed;
    return claimed;
  }

  async function runDigest(current: { entry: QueuedTask }): Promise<Outcome> {
    const entry = current.entry;
    const task = entry.task;
    if (task.kind !== "digest") return "skipped";
    const at = now();
    const [items, person, prefs] = await Promise.all([
      deps.queue.digestItems(task.user, task.period, DIGEST_MAX_ITEMS),
      deps.directory.get(task.user),
      deps.preferences.get(task.user),
    ]);
    const kept: { item: DigestItem; envelope: Envelope }[] = [];
    for (const item of items) {
      const [envelope, streamItem] = await Promise.all([
        deps.store.getEnvelope(item.event),
        deps.store.findItem(task.user, item.event),
      ]);
      if (!envelope || !stillUnseen(streamItem, at)) continue;
      if (!chooseChannels(envelope, prefs).email) continue;
      kept.push({ item, envelope });
    }
    if (kept.length === 0 || !person?.email || !allowed(person)) {
      return await deps.queue.completeDigest(entry, items) ? "skipped" : "lost";
    }
    const quietEnd = quietUntil(prefs, at);
    if (quietEnd !== undefined) {
      return await deps.queue.reschedule(entry, quietEnd, task) ? "deferred" : "lost";
    }
    const locale = localeOf(prefs, person.locale);
    const url = await unsubscribeUrl(task.user, kept.map((k) => k.envelope.metadata.source));
    const rendered = renderDigest(
      kept.map((k) => k.envelope),
      { locale, period: task.period, ...(person.name ? { name: person.name } : {}) },
      { unsubscribeUrl: url, ...(deps.appUrl ? { appUrl: deps.appUrl } : {}) },
    );
    // The digest's identity is the set of items it covers, stable across retries.
    const id = await messageId(task.id, kept.map((k) => k.item.event).sort().join(","));
    const claimed = await claim(current, at);
    if (!claimed) return "lost";
    await deliver(person, rendered, id, url);
    return await deps.queue.completeDigest(claimed, items) ? "sent" : "lost";
  }

  async function failed(entry: QueuedTask, error: unknown, run: MailRun) {
    const at = now();
    const attempts = entry.task.attempts + 1;
    const permanent = error instanceof MailSendError && error.permanent;
    run.lastError = (error as Error).message?.slice(0, 300) ?? String(error);
    if (permanent || attempts >= deps.maxAttempts) {
      await deps.queue.deadLetter(
        { ...entry },
        permanent ? run.lastError : `gave up after ${attempts} attempts: ${run.lastError}`,
        at,
      );
      run.deadLettered++;
      return;
    }
    const delay = backoffDelay(attempts - 1, { baseMs: deps.retryBaseMs, maxMs: MAX_RETRY_MS });
    await deps.queue.reschedule(entry, at + delay, { ...entry.task, attempts });
    run.failed++;
  }

  async function peek() {
    const [nextDueAt, depth] = await Promise.all([deps.queue.nextDueAt(), deps.queue.depth()]);
    return { ...(nextDueAt !== undefined ? { nextDueAt } : {}), depth };
  }

  return {
    transportKind: deps.transport.kind,
    peek,
    async runDue(limit) {
      const run: MailRun = {
        sent: 0,
        skipped: 0,
        deferred: 0,
        failed: 0,
        deadLettered: 0,
        transportDown: false,
        depth: 0,
      };
      for (const due of await deps.queue.due(now(), limit)) {
        const current = { entry: due };
        let outcome: Outcome;
        try {
          outcome = due.task.kind === "item" ? await runItem(current) : await runDigest(current);
        } catch (error) {
          const entry = current.entry;
          if (!(error instanceof MailSendError)) {
            // A bug or a store failure on one task must not stall the queue: retry it later.
            deps.onError?.(`Mail task "${entry.task.id}" failed`, error);
          }
          await failed(entry, error, run);
          if (error instanceof MailSendError && !error.permanent) {
            run.transportDown = true;
            break;
          }
          continue;
        }
        if (outcome === "sent") run.sent++;
        else if (outcome === "deferred") run.deferred++;
        else if (outcome === "skipped") run.skipped++;
      }
      return { ...run, ...await peek() };
    },
  };
}
