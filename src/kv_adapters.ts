/**
 * The adapters of the directory, preferences and mail ports on one Deno KV handle, plus
 * the mail transport picked from the configuration: what entry points hand to `createApp`.
 */

import type { Config } from "./config.ts";
import type { Directory } from "./directory/directory.ts";
import { createKvDirectory } from "./directory/kv_directory.ts";
import { createKvMailQueue } from "./mail/kv_mail_queue.ts";
import type { MailQueue } from "./mail/mail_queue.ts";
import { createMailTransport } from "./mail/mail_transports.ts";
import type { MailTransport } from "./mail/transport.ts";
import { createKvPreferences } from "./preferences/kv_preferences.ts";
import type { PreferencesStore } from "./preferences/preferences_store.ts";
import type { ControlStore } from "./controls/control_store.ts";
import { createKvControlStore } from "./controls/kv_control_store.ts";
import type { RateLimiter } from "./ratelimit/rate_limiter.ts";
import { createRateLimiter } from "./ratelimit/rate_limiters.ts";
import type { ConversationStore } from "./messaging/conversation_store.ts";
import { createKvConversationStore } from "./messaging/kv_conversation_store.ts";

/** The KV-backed adapters of issue 4's ports. */
export interface KvAdapters {
  directory: Directory;
  preferences: PreferencesStore;
  mailQueue: MailQueue;
  mailTransport: MailTransport;
  /** Kill switches and their audit log (issue 5). */
  controlStore: ControlStore;
  /** The rate limiter `RELAIS_RATE_LIMITER` / `REDIS_URL` picks (issue 5). */
  rateLimiter: RateLimiter;
  /** Conversations, messages and blocks (issue 3). */
  conversations: ConversationStore;
}

/** Creates the directory, preferences and mail queue on `kv`, and the mail transport. */
export function createKvAdapters(kv: Deno.Kv, config: Config): KvAdapters {
  return {
    directory: createKvDirectory(kv),
    preferences: createKvPreferences(kv),
    mailQueue: createKvMailQueue(kv),
    mailTransport: createMailTransport(config.mail),
    controlStore: createKvControlStore(kv),
    rateLimiter: createRateLimiter(config, { kv }),
    conversations: createKvConversationStore(kv),
  };
}
