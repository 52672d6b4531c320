/** Waits on the mailer through its inspect endpoint: the fact that no mail is left to send. */

import { eventually } from "./eventually.ts";
import { SERVICE_KEY } from "./server.ts";

/** What the mailer's inspect endpoint shows of it. */
export interface MailerView {
  state: string;
  context: {
    queueDepth: number;
    breaker: { state: string; failures: number };
    totals: { sent: number; skipped: number; deferred: number; failed: number };
  };
}

/** The mailer of the relais at `origin`, as its inspect endpoint shows it. */
export async function inspectMailer(origin: string): Promise<MailerView> {
  const res = await fetch(`${origin}/v1/admin/actors/mailer/main`, {
    headers: { "x-api-key": SERVICE_KEY },
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`Cannot inspect the mailer: status ${res.status}`);
  }
  return await res.json() as MailerView;
}

/**
 * Resolves once the mail queue of the relais at `origin` is empty and its mailer idle:
 * every task was sent or finished without a mail, so no further mail can come. Call it
 * once the tasks are known to be queued (e.g. after the first of their mails arrived).
 */
export async function mailQueueDrained(origin: string, timeoutMs = 10_000): Promise<MailerView> {
  return await eventually(
    async () => {
      const mailer = await inspectMailer(origin);
      return mailer.state === "waiting" && mailer.context.queueDepth === 0 ? mailer : undefined;
    },
    timeoutMs,
    "the mail queue to drain",
  );
}
