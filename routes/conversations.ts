/**
 * Conversations over HTTP: create (users, or services with `conversations:write`), list,
 * history, send, edit, delete, read, typing, members, leave, mute, and the user's blocks.
 */

import { type Context, Hono, type MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import * as v from "valibot";
import { requireScope, requireUser, type RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import { readJson } from "../src/body.ts";
import type { Actor, Messaging } from "../src/messaging/messaging.ts";
import { parseOrThrow, queryInt } from "../src/validate.ts";

const name = (max: number) => v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(max));
const userId = name(256);
const webUrl = v.pipe(
  v.string(),
  v.maxLength(2000),
  v.url("expected a URL"),
  v.check(
    (s) => URL.canParse(s) && /^https?:$/.test(new URL(s).protocol),
    'expected an "http" or "https" URL',
  ),
);
const seq = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));

/** A file a message points to. */
export const AttachmentSchema = v.strictObject({ url: webUrl, name: name(255) });

/** Body of `POST /v1/conversations`. */
export const CreateConversationSchema = v.strictObject({
  kind: v.optional(v.picklist(["direct", "group"])),
  title: v.optional(name(200)),
  /** For a user: the other members; for a service: every member. */
  members: v.pipe(v.array(userId), v.minLength(1), v.maxLength(1000)),
  /** Service only: members who manage the group. */
  owners: v.optional(v.pipe(v.array(userId), v.maxLength(1000))),
  context: v.optional(v.strictObject({ type: name(100), id: name(200), url: v.optional(webUrl) })),
});

/** Body of `POST /v1/conversations/:id/messages` (the length cap answers `too_long`). */
export const SendMessageSchema = v.strictObject({
  text: v.optional(v.pipe(v.string(), v.maxLength(1_000_000)), ""),
  client_id: v.optional(name(200)),
  attachments: v.optional(v.pipe(v.array(AttachmentSchema), v.maxLength(10))),
});

/** Body of `PATCH /v1/conversations/:id/messages/:seq`. */
export const EditMessageSchema = v.strictObject({
  text: v.pipe(v.string(), v.maxLength(1_000_000)),
});

/** Body of `POST /v1/conversations/:id/read`; without `seq`, up to the last message. */
export const ReadConversationSchema = v.strictObject({ seq: v.optional(seq) });

/** Body of `POST /v1/conversations/:id/members`; roles only from a service. */
export const AddMembersSchema = v.strictObject({
  members: v.pipe(
    v.array(v.union([
      userId,
      v.strictObject({ id: userId, role: v.optional(v.picklist(["owner", "member"])) }),
    ])),
    v.minLength(1),
    v.maxLength(1000),
  ),
});

/** Query of `GET /v1/conversations/:id/messages`. */
export const HistoryQuerySchema = v.object({
  before: v.optional(queryInt(1, Number.MAX_SAFE_INTEGER)),
  limit: v.optional(queryInt(1, 100), "50"),
});

const ConversationIdSchema = name(200);
const SeqParamSchema = queryInt(1, Number.MAX_SAFE_INTEGER);

/** Dependencies of {@linkcode createConversationRoutes}. */
export interface ConversationRoutesDeps extends RequireUserDeps {
  keys: ServiceKeys;
  messaging: Messaging;
  maxBodyBytes: number;
}

/** Reads a JSON body that may be absent (`{}` then). */
async function optionalJson(c: Context, maxBytes: number): Promise<unknown> {
  const length = c.req.header("content-length");
  if (length === "0" || (length === undefined && !c.req.header("content-type"))) return {};
  return await readJson(c, maxBytes);
}

/** `/v1/conversations/*`, `/v1/me/conversations` and `/v1/me/blocks/*`. */
export function createConversationRoutes(deps: ConversationRoutesDeps) {
  const { messaging } = deps;
  const verifyUser = requireUser(deps);
  const verifyService = requireScope(deps.keys, "conversations:write");

  /** Requires a user (reusing one another middleware verified) and remembers them. */
  const user: MiddlewareHandler<AppEnv> = createMiddleware<AppEnv>(async (c, next) => {
    if (!c.get("user")) await verifyUser(c, () => Promise.resolve());
    messaging.seen(c.var.user);
    await next();
  });

  /** A service key (X-API-Key, or a bearer that is not a JWT) or else a user. */
  const userOrService: MiddlewareHandler<AppEnv> = createMiddleware<AppEnv>(async (c, next) => {
    const bearer = /^Bearer[ \t]+(\S+)/i.exec(c.req.header("authorization") ?? "")?.[1];
    const serviceKey = c.req.header("x-api-key") !== undefined ||
      (bearer !== undefined && bearer.split(".").length !== 3 &&
        c.req.header("x-signed-context") === undefined);
    if (serviceKey) return await verifyService(c, next);
    return await user(c, next);
  });

  const actorOf = (c: Context<AppEnv>): Actor => {
    const service = c.get("service");
    return service ? { kind: "service", name: service.name } : { kind: "user", user: c.var.user };
  };
  const conversationId = (c: Context<AppEnv>) =>
    parseOrThrow(ConversationIdSchema, c.req.param("id"), "conversation id");
  const seqParam = (c: Context<AppEnv>) =>
    parseOrThrow(SeqParamSchema, c.req.param("seq"), "message seq");

  return new Hono<AppEnv>()
    .post("/v1/conversations", userOrService, async (c) => {
      const body = parseOrThrow(
        CreateConversationSchema,
        await readJson(c, deps.maxBodyBytes),
        "conversation",
      );
      const { conversation, created } = await messaging.create(actorOf(c), body);
      return c.json(conversation, created ? 201 : 200);
    })
    .get("/v1/me/conversations", user, async (c) => {
      return c.json(await messaging.list(c.var.user.id));
    })
    .get("/v1/me/blocks", user, async (c) => {
      return c.json({ blocks: await messaging.blocks(c.var.user.id) });
    })
    .put("/v1/me/blocks/:userId", user, async (c) => {
      const other = parseOrThrow(userId, c.req.param("userId"), "user id");
      await messaging.block(c.var.user.id, other);
      return c.json({ user: other, blocked: true });
    })
    .delete("/v1/me/blocks/:userId", user, async (c) => {
      const other = parseOrThrow(userId, c.req.param("userId"), "user id");
      await messaging.unblock(c.var.user.id, other);
      return c.json({ user: other, blocked: false });
    })
    .get("/v1/conversations/:id", user, async (c) => {
      return c.json(await messaging.get(c.var.user.id, conversationId(c)));
    })
    .get("/v1/conversations/:id/messages", user, async (c) => {
      const query = parseOrThrow(HistoryQuerySchema, c.req.query(), "query");
      return c.json(
        await messaging.history(c.var.user.id, conversationId(c), {
          before: query.before,
          limit: query.limit,
        }),
      );
    })
    .post("/v1/conversations/:id/messages", user, async (c) => {
      const id = conversationId(c);
      const body = parseOrThrow(SendMessageSchema, await readJson(c, deps.maxBodyBytes), "message");
      const { message, created } = await messaging.send(c.var.user.id, id, body);
      if (!created) c.header("Idempotent-Replayed", "true");
      return c.json(message, created ? 201 : 200);
    })
    .patch("/v1/conversations/:id/messages/:seq", user, async (c) => {
      const id = conversationId(c);
      const seq = seqParam(c);
      const body = parseOrThrow(EditMessageSchema, await readJson(c, deps.maxBodyBytes), "edit");
      return c.json(await messaging.edit(c.var.user.id, id, seq, body.text));
    })
    .delete("/v1/conversations/:id/messages/:seq", user, async (c) => {
      return c.json(await messaging.remove(c.var.user.id, conversationId(c), seqParam(c)));
    })
    .post("/v1/conversations/:id/read", user, async (c) => {
      const id = conversationId(c);
      const body = parseOrThrow(
        ReadConversationSchema,
        await optionalJson(c, deps.maxBodyBytes),
        "read",
      );
      const { read, unread } = await messaging.read(c.var.user.id, id, body.seq);
      return c.json({ conversation: id, read, unread });
    })
    .post("/v1/conversations/:id/typing", user, async (c) => {
      await messaging.typing(c.var.user.id, conversationId(c));
      return c.body(null, 204);
    })
    .post("/v1/conversations/:id/members", userOrService, async (c) => {
      const id = conversationId(c);
      const body = parseOrThrow(AddMembersSchema, await readJson(c, deps.maxBodyBytes), "members");
      const members = body.members.map((m) => typeof m === "string" ? { id: m } : m);
      return c.json(await messaging.addMembers(actorOf(c), id, members));
    })
    .delete("/v1/conversations/:id/members/:userId", userOrService, async (c) => {
      const id = conversationId(c);
      const member = parseOrThrow(userId, c.req.param("userId"), "user id");
      return c.json(await messaging.removeMember(actorOf(c), id, member));
    })
    .post("/v1/conversations/:id/leave", user, async (c) => {
      const id = conversationId(c);
      await messaging.removeMember(actorOf(c), id, c.var.user.id);
      return c.json({ conversation: id, left: true });
    })
    .put("/v1/conversations/:id/mute", user, async (c) => {
      const id = conversationId(c);
      return c.json({ conversation: id, ...await messaging.mute(c.var.user.id, id, true) });
    })
    .delete("/v1/conversations/:id/mute", user, async (c) => {
      const id = conversationId(c);
      return c.json({ conversation: id, ...await messaging.mute(c.var.user.id, id, false) });
    });
}
