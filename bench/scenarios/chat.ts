/**
 * Scenario 5, chat: conversations created with the service key, every member online; in
 * each conversation one member sends over the WebSocket (`msg.send`), a few messages in
 * flight at a time. A message counts as durable when another member receives it (the
 * server assigns its seq and stores it before fanning it out). Measured: durable messages
 * per second over all conversations, and send → receive percentiles.
 */

import { type Context, isMissingRoute, request } from "../_context.ts";
import { userId } from "../_ids.ts";
import { median, percentiles, round } from "../_stats.ts";

/** Messages each sender keeps in flight. */
export const WINDOW = 2;

/** One run. */
export interface ChatRun {
  run: number;
  sent: number;
  delivered: number;
  lost: number;
  errors: number;
  messagesPerSecond: number;
  p50: number;
  p95: number;
  p99: number;
  lastError?: string;
}

function conversationId(body: Record<string, unknown>): string | undefined {
  const nested = body.conversation as Record<string, unknown> | undefined;
  const id = body.id ?? nested?.id;
  return typeof id === "string" ? id : undefined;
}

/** Runs the chat scenario, or reports why it cannot. */
export async function runChat(ctx: Context) {
  const { profile } = ctx;
  const server = await ctx.startServer("relais");
  const group = "chat";
  try {
    const probe = await request(ctx, server.origin, "/v1/conversations", { body: {} });
    if (isMissingRoute(probe)) {
      return {
        available: false,
        note: "not available yet: POST /v1/conversations answers 404 (no conversation routes)",
      };
    }
    const count = profile.chatConversations;
    const size = profile.chatMembers;
    ctx.log(`chat: creating ${count} conversations of ${size} members`);
    const conversations: { id: string; members: string[] }[] = [];
    for (let c = 0; c < count; c++) {
      const members = Array.from({ length: size }, (_, j) => userId("chat", c * size + j));
      const res = await request(ctx, server.origin, "/v1/conversations", {
        body: { members, title: `bench ${c}` },
      });
      const id = conversationId(res.body);
      if (res.status >= 300 || !id) {
        return {
          available: false,
          note: `not available: POST /v1/conversations answered ${res.status} ${
            res.text.slice(0, 200)
          }`,
        };
      }
      conversations.push({ id, members });
    }
    // Every conversation's members live on one load generator, which sees both ends.
    const shares = ctx.loadgens.map((_, i) =>
      conversations.filter((_, c) => c % ctx.loadgens.length === i)
    );
    ctx.log(`chat: connecting ${count * size} users`);
    await Promise.all(ctx.loadgens.map((lg, i) =>
      lg.call("connect", {
        group,
        peer: "relais",
        url: server.connectUrl,
        users: shares[i].flatMap((c) => c.members),
        concurrency: 64,
        timeoutMs: 60_000,
      }, 300_000)
    ));
    const runs: ChatRun[] = [];
    for (let run = 0; run <= profile.runs; run++) {
      const durationMs = run === 0 ? 1000 : profile.chatMs;
      ctx.log(`chat: ${run === 0 ? "warm-up" : `run ${run}`}, ${durationMs} ms`);
      const results = await Promise.all(
        ctx.loadgens.map((lg, i) =>
          lg.call("chat", { group, conversations: shares[i], window: WINDOW, durationMs }, 120_000)
        ),
      );
      if (run === 0) {
        const seen = results.reduce((s, r) => s + r.seen, 0);
        if (seen === 0) {
          const error = results.find((r) => r.lastError)?.lastError ?? "no message came through";
          return { available: false, note: `not available: msg.send gives ${error}` };
        }
        continue;
      }
      const samples = results.flatMap((r) => r.samples as number[]);
      const started = Math.min(...results.map((r) => r.started));
      const ended = Math.max(...results.map((r) => r.ended));
      const delivered = results.reduce((s, r) => s + r.seen, 0);
      const p = percentiles(samples);
      runs.push({
        run,
        sent: results.reduce((s, r) => s + r.sent, 0),
        delivered,
        lost: results.reduce((s, r) => s + r.lost, 0),
        errors: results.reduce((s, r) => s + r.errors, 0),
        messagesPerSecond: round((delivered * 1000) / (ended - started)),
        p50: round(p.p50),
        p95: round(p.p95),
        p99: round(p.p99),
        lastError: results.find((r) => r.lastError)?.lastError,
      });
    }
    return {
      available: true,
      conversations: count,
      members: size,
      runs,
      summary: {
        messagesPerSecond: round(median(runs.map((r) => r.messagesPerSecond))),
        p99: round(median(runs.map((r) => r.p99))),
        p50: round(median(runs.map((r) => r.p50))),
        lost: runs.reduce((s, r) => s + r.lost, 0),
      },
    };
  } finally {
    await server.stop();
    await Promise.all(ctx.loadgens.map((lg) => lg.call("close", { group, forget: true })))
      .catch(() => {});
  }
}
