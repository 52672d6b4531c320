/**
 * The mail channel as the services wire it: the mailer, built from the configuration and
 * the stores it reads, defined as the actor that drains the mail queue, and the tokens of
 * its unsubscribe links.
 */

import type { Registry } from "../../actors/registry.ts";
import type { Config } from "../config.ts";
import type { Directory } from "../directory/directory.ts";
import type { Metrics } from "../metrics.ts";
import type { PreferencesStore } from "../preferences/preferences_store.ts";
import type { Store } from "../store/store.ts";
import type { MailQueue } from "./mail_queue.ts";
import { CLAIM_MS, createMailer, type MailerDeps } from "./mailer.ts";
import { defineMailerActor, mailerSettings } from "./mailer_actor.ts";
import type { MailTransport } from "./transport.ts";
import { createUnsubscribeTokens, type UnsubscribeTokens } from "./unsubscribe.ts";

/** What {@linkcode wireMail} needs. */
export interface MailWiring {
  config: Pick<Config, "mail" | "mailer">;
  registry: Registry;
  metrics: Metrics;
  queue: MailQueue;
  store: Store;
  directory: Directory;
  preferences: PreferencesStore;
  transport: MailTransport;
  /** The `email` kill switch, judged on the recipient's directory entry. */
  emailAllowed: MailerDeps["emailAllowed"];
  /** Cluster mode: each task is claimed before its send (for {@linkcode CLAIM_MS}). */
  claim: boolean;
  onError(message: string, error: unknown): void;
}

/** Defines the mailer actor; answers the tokens of the unsubscribe links. */
export function wireMail(deps: MailWiring): UnsubscribeTokens {
  const { mail, mailer } = deps.config;
  const tokens = createUnsubscribeTokens(mailer.secret);
  defineMailerActor({
    registry: deps.registry,
    metrics: deps.metrics,
    mailer: createMailer({
      queue: deps.queue,
      store: deps.store,
      directory: deps.directory,
      preferences: deps.preferences,
      transport: deps.transport,
      tokens,
      from: mail.from,
      publicUrl: mailer.publicUrl,
      ...(mailer.appUrl ? { appUrl: mailer.appUrl } : {}),
      dailyDigestAt: mailer.dailyDigestAt,
      retryBaseMs: mailer.retryBaseMs,
      maxAttempts: mailer.maxAttempts,
      onError: deps.onError,
      emailAllowed: deps.emailAllowed,
      ...(deps.claim ? { claimMs: CLAIM_MS } : {}),
    }),
    settings: mailerSettings(mailer.breakerThreshold, mailer.breakerCooldownMs),
    onError: deps.onError,
  });
  return tokens;
}
