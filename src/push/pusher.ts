/**
 * The pusher's work, as effects for the push actor: queue the pushes of a committed
 * fan-out batch, and run the due tasks of the queue.
 *
 * A NOTIFICATION goes out as a push to each subscription of a target that has no live
 * connection when its batch is delivered. Each task is decided on from the latest state
 * when it runs: not when the user connected meanwhile, read the item, or a newer item with
 * the same collapse key replaced it; not when another user registered its endpoint since
 * (the browser is theirs); not when the `push` (or `notifications`) kill switch or the
 * user's preferences say no; later when quiet hours are on (unless critical). A
 * push service that answers 404 or 410 loses the subscription; 429, 5xx or no answer
 * retries the task with exponential backoff, up to `maxAttempts`. The queue is in the
 * store, so a restart loses nothing queued; a crash between a batch's commit and its
 * tasks' commit loses that batch's pushes (the items stay in the inbox). In a cluster
 * (`claimMs`), each task is claimed right before its send, fenced by the runner's lease,
 * as the mailer claims its mail: runners overlapping during a handover never send one push
 * twice, and a push claimed by a runner that then died goes out once the claim passed.
 */

import type { PushRunOutput } from "../../actors/push.machine.ts";
import { backoffDelay } from "../backoff.ts";
import { type Subject, subjectOf } from "../controls/control.ts";
import type { Directory, Locale } from "../directory/directory.ts";
import { contentOf } from "../mail/templates.ts";
import { choosePush, isCritical, localeOf, quietUntil } from "../preferences/preferences.ts";
import type { PreferencesStore } from "../preferences/preferences_store.ts";
import type { Envelope } from "../schemas/envelope.ts";
import type { EventStore, FanoutBatch, StreamItem, StreamStore } from "../store/store.ts";
import type { PushStore, PushTask, QueuedPush, VapidKeys } from "./push_store.ts";
import type { PushSender, PushUrgency } from "./sender.ts";
import { type EndpointPolicy, endpointRefusal, toBase64Url } from "./subscription.ts";

/**
 * How long a claimed task stays out of other runs: well above a send's timeout (10 s).
 * A runner that dies after its claim leaves the task to the next runner once it passed.
 */
export const CLAIM_MS = 60_000;
/** The longest wait between two attempts of one push. */
const MAX_RETRY_MS = 6 * 3_600_000;
/** How long a push service keeps a message for an offline device, at most (4 weeks). */
const MAX_TTL_SECONDS = 28 * 86_400;
/** The default time to live of a push without an expiration (1 day). */
const DEFAULT_TTL_SECONDS = 86_400;
/** Characters of a title and a body in a payload (push payloads hold about 4 KB). */
const MAX_TITLE = 200;
const MAX_BODY = 1000;
/**
 * Bytes of a payload's JSON: push services may refuse an encrypted body over 4096 bytes,
 * which leaves 3993 for the text (RFC 8291 section 4).
 */
const MAX_PAYLOAD_BYTES = 3993;

const encoder = new TextEncoder();

/**
 * The longest start of `text` (whole characters, an ellipsis where it was cut) that `fits`;
 * `""` when none does.
 */
function cutToFit(text: string, fits: (cut: string) => boolean): string {
  if (fits(text)) return text;
  const chars = Array.from(text);
  let low = 0;
  let high = chars.length - 1;
  // The number of characters kept: the most for which the cut still fits.
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (fits(`${chars.slice(0, mid).join("")}…`)) low = mid;
    else high = mid - 1;
  }
  return low > 0 ? `${chars.slice(0, low).join("")}…` : "";
}

/**
 * A payload within {@linkcode MAX_PAYLOAD_BYTES}: a push over it would be refused, and the
 * notification lost. The body gives way first; a link too long to leave room for any body
 * goes; then the title is cut.
 */
function fitted(payload: PushPayload): PushPayload {
  const fits = (p: PushPayload) => encoder.encode(JSON.stringify(p)).length <= MAX_PAYLOAD_BYTES;
  const withBody = (p: PushPayload) => ({
    ...p,
    body: cutToFit(payload.body, (body) => fits({ ...p, body })),
  });
  const linked = withBody(payload);
  if (fits(linked) && (linked.body !== "" || payload.body === "")) return linked;
  const { url: _, ...withoutLink } = payload;
  const out = withBody(withoutLink);
  if (fits(out)) return out;
  return { ...out, title: cutToFit(out.title, (title) => fits({ ...out, title })) };
}

/** What a push payload holds: what the service worker shows, and where a click goes. */
export interface PushPayload {
  /** The event id. */
  id: string;
  seq: number;
  title: string;
  body: string;
  url?: string;
  source: string;
  topic: string;
  /** The collapse key: a newer notification with the same tag replaces the shown one. */
  tag?: string;
  timestamp: string;
}

/** Dependencies of {@linkcode createPusher}. */
export interface PusherDeps {
  push: PushStore;
  store: Pick<StreamStore, "findItem"> & Pick<EventStore, "getEnvelope">;
  directory: Pick<Directory, "get">;
  preferences: Pick<PreferencesStore, "get">;
  sender: PushSender;
  /** The VAPID keys and subject, resolved once (generated in development). */
  vapid(): Promise<VapidKeys & { subject: string }>;
  endpoints: EndpointPolicy;
  /** Whether the user has a live connection (WebSocket, SSE or poll) on this node. */
  isLive(user: string): boolean;
  /** The `push` and `notifications` kill switches; absent: always allowed. */
  pushAllowed?(subject: Subject): boolean;
  /** The portfolio's address, for relative links of payloads. */
  appUrl?: string;
  retryBaseMs: number;
  /** Attempts before a push is given up. */
  maxAttempts: number;
  /**
   * Cluster mode: how long a task is claimed for before its send ({@linkcode CLAIM_MS});
   * absent, one runner alone drains the queue and claims nothing.
   */
  claimMs?: number;
  now?: () => number;
  onError?(message: string, error: unknown): void;
}

/** The pusher's effects. */
export interface Pusher {
  /**
   * Queues the pushes of a committed fan-out batch: one task per subscription of each
   * NOTIFICATION target without a live connection. Answers the due time, or `undefined`
   * when nothing was queued.
   */
  enqueue(batch: FanoutBatch, envelope: Envelope): Promise<number | undefined>;
  /** Runs the due tasks, at most `limit` of them. */
  runDue(limit: number): Promise<PushRunOutput>;
  /** The earliest due time and the queue depth, without running anything. */
  peek(): Promise<{ nextDueAt?: number; depth: number }>;
}

type Outcome = "sent" | "skipped" | "deferred" | "failed" | "gaveUp" | "gone";

/** A collapse key as an RFC 8030 `Topic`: at most 32 base64url characters. */
async function topicOf(collapseKey: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(collapseKey));
  return toBase64Url(new Uint8Array(digest)).slice(0, 32);
}

function urgencyOf(envelope: Envelope): PushUrgency {
  const { priority } = envelope.metadata;
  if (isCritical(envelope.metadata) || priority === "HIGH") return "high";
  return priority === "LOW" ? "low" : "normal";
}

/** Creates the pusher's effects. */
export function createPusher(deps: PusherDeps): Pusher {
  const now = deps.now ?? Date.now;

  const stillUnseen = (item: StreamItem | undefined, at: number) =>
    item !== undefined && item.readAt === undefined && item.replacedBy === undefined &&
    (item.exp === undefined || item.exp > at);

  function payloadOf(envelope: Envelope, seq: number, at: number, locale: Locale) {
    const content = contentOf(envelope, locale, deps.appUrl);
    const { metadata } = envelope;
    const payload: PushPayload = {
      id: metadata.id,
      seq,
      title: content.title.slice(0, MAX_TITLE),
      body: content.body.slice(0, MAX_BODY),
      ...(content.url ? { url: content.url } : {}),
      source: metadata.source,
      topic: metadata.topic,
      ...(metadata.collapse_key ? { tag: metadata.collapse_key } : {}),
      timestamp: metadata.timestamp ?? new Date(at).toISOString(),
    };
    return fitted(payload);
  }

  async function runTask(listed: QueuedPush, run: PushRunOutput): Promise<Outcome> {
    // The task as last committed: its claim, once claimed.
    let entry = listed;
    const { task } = entry;
    const at = now();
    const done = async (outcome: Outcome) =>
      await deps.push.complete(entry) ? outcome : "skipped" as const;
    const [subscription, holder, envelope, item, person, prefs] = await Promise.all([
      deps.push.getSubscription(task.user, task.subscription),
      deps.push.endpointHolder(task.subscription),
      deps.store.getEnvelope(task.event),
      deps.store.findItem(task.user, task.event),
      deps.directory.get(task.user),
      deps.preferences.get(task.user),
    ]);
    if (!subscription || !envelope || !stillUnseen(item, at)) return await done("skipped");
    // Registered since by another user (a copy from before endpoints were indexed stayed
    // with this one): the browser is theirs now, and this copy goes.
    if (holder !== undefined && holder !== task.user) {
      await deps.push.removeSubscription(task.user, subscription.id);
      return await done("skipped");
    }
    // Delivered in-app meanwhile: the device already shows it.
    if (deps.isLive(task.user)) return await done("skipped");
    const subject = subjectOf(task.user, person);
    if (deps.pushAllowed && !deps.pushAllowed(subject)) return await done("skipped");
    if (!choosePush(envelope, prefs)) return await done("skipped");
    const critical = isCritical(envelope.metadata);
    const quietEnd = critical ? undefined : quietUntil(prefs, at);
    if (quietEnd !== undefined) {
      return await deps.push.reschedule(entry, quietEnd, task) ? "deferred" : "skipped";
    }
    // The allow-list may have changed since the subscription was registered.
    if (endpointRefusal(subscription.endpoint, deps.endpoints) !== undefined) {
      await deps.push.removeSubscription(task.user, subscription.id);
      return await done("gone");
    }
    const exp = item!.exp;
    const ttlSeconds = exp === undefined
      ? DEFAULT_TTL_SECONDS
      : Math.max(0, Math.min(MAX_TTL_SECONDS, Math.floor((exp - at) / 1000)));
    const collapseKey = envelope.metadata.collapse_key;
    const payload = payloadOf(envelope, task.seq, at, localeOf(prefs, person?.locale));
    // In a cluster, claimed right before the send: of two runners overlapping during a
    // handover, one claims it and sends it; the other (or one that lost its lease) does not.
    if (deps.claimMs !== undefined) {
      const claimed = await deps.push.claim(entry, at + deps.claimMs);
      if (!claimed) return "skipped";
      entry = claimed;
    }
    const outcome = await deps.sender.send({
      endpoint: subscription.endpoint,
      keys: subscription.keys,
      payload: JSON.stringify(payload),
      ttlSeconds,
      urgency: urgencyOf(envelope),
      ...(collapseKey ? { topic: await topicOf(collapseKey) } : {}),
    }, await deps.vapid());
    switch (outcome.kind) {
      case "sent":
        return await done("sent");
      case "gone":
        await deps.push.removeSubscription(task.user, subscription.id);
        return await done("gone");
      case "refused":
        run.lastError = outcome.error;
        deps.onError?.(`Push task "${task.id}" given up`, outcome.error);
        return await done("gaveUp");
      case "retry": {
        run.lastError = outcome.error;
        const attempts = task.attempts + 1;
        if (attempts >= deps.maxAttempts) {
          deps.onError?.(
            `Push task "${task.id}" given up after ${attempts} attempts`,
            outcome.error,
          );
          return await done("gaveUp");
        }
        const delay = Math.max(
          backoffDelay(attempts - 1, { baseMs: deps.retryBaseMs, maxMs: MAX_RETRY_MS }),
          Math.min(outcome.retryAfterMs ?? 0, MAX_RETRY_MS),
        );
        // The backoff runs from the failed answer, not from when the attempt began.
        await deps.push.reschedule(entry, now() + delay, { ...task, attempts });
        return "failed";
      }
    }
  }

  async function peek() {
    const [nextDueAt, depth] = await Promise.all([deps.push.nextDueAt(), deps.push.depth()]);
    return { ...(nextDueAt !== undefined ? { nextDueAt } : {}), depth };
  }

  return {
    peek,
    async enqueue(batch, envelope) {
      if (envelope.metadata.type !== "NOTIFICATION") return undefined;
      if (!envelope.routing.channels.includes("inapp")) return undefined;
      // Nothing of it is stored yet (a push reads its item): its batches queue the pushes.
      if (batch.ahead) return undefined;
      const tasks: PushTask[] = [];
      const { id } = batch.event;
      const offline = batch.items.filter(({ user, item }) => item.durable && !deps.isLive(user));
      if (offline.length === 0) return undefined;
      // Most users never subscribe: one read per ten targets finds those who did.
      const subscribed = await deps.push.withSubscriptions(offline.map(({ user }) => user));
      for (const { user, item } of offline) {
        if (!subscribed.has(user)) continue;
        for (const subscription of await deps.push.listSubscriptions(user)) {
          tasks.push({
            id: `${id}:${user}:${subscription.id}`,
            user,
            event: id,
            seq: item.seq,
            subscription: subscription.id,
            attempts: 0,
          });
        }
      }
      if (tasks.length === 0) return undefined;
      const dueAt = now();
      await deps.push.add(dueAt, tasks);
      return dueAt;
    },
    async runDue(limit) {
      const run: PushRunOutput = {
        sent: 0,
        skipped: 0,
        deferred: 0,
        failed: 0,
        gaveUp: 0,
        gone: 0,
        depth: 0,
      };
      for (const entry of await deps.push.due(now(), limit)) {
        try {
          run[await runTask(entry, run)]++;
        } catch (error) {
          // A bug or a store failure on one task must not stall the queue: retry it later.
          deps.onError?.(`Push task "${entry.task.id}" failed`, error);
          run.lastError = String(error).slice(0, 300);
          const attempts = entry.task.attempts + 1;
          if (attempts >= deps.maxAttempts) {
            await deps.push.complete(entry).catch(() => false);
            run.gaveUp++;
          } else {
            const delay = backoffDelay(attempts - 1, {
              baseMs: deps.retryBaseMs,
              maxMs: MAX_RETRY_MS,
            });
            await deps.push.reschedule(entry, now() + delay, { ...entry.task, attempts })
              .catch(() => false);
            run.failed++;
          }
        }
      }
      return { ...run, ...await peek() };
    },
  };
}
