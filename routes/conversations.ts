/**
 * Conversations over HTTP: create (users, or services with `conversations:write`), list,
 * read, typing, members, leave, mute, and the user's blocks; with the message routes of
 * `messages.ts` (history, send, edit, delete) mounted among them.
 */

import { type Context, Hono, type MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import * as v from "valibot";
import { requireScope } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { ServiceKeys } from "../src/auth/service_keys.ts";
import type { Actor } from "../src/messaging/messaging.ts";
import { describe } from "../src/openapi.ts";
import { validate } from "../src/validate.ts";
import {
  ConversationIdSchema,
  conversationParam,
  name,
  rememberedUser,
  userId,
  webUrl,
} from "./_conversation_common.ts";
import { jsonBody } from "./_json_body.ts";
import { createMessageRoutes, type MessageRoutesDeps } from "./messages.ts";

const seq = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));

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

/** Dependencies of {@linkcode createConversationRoutes}. */
export interface ConversationRoutesDeps extends MessageRoutesDeps {
  keys: ServiceKeys;
}

/** `/v1/conversations/*`, `/v1/me/conversations` and `/v1/me/blocks/*`. */
export function createConversationRoutes(deps: ConversationRoutesDeps) {
  const { messaging } = deps;
  const verifyService = requireScope(deps.keys, "conversations:write");
  const user = rememberedUser(deps);

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
    return service
      ? { kind: "service", name: service.name }
      : { kind: "user", user: c.get("user") };
  };
  const body = { maxBytes: deps.maxBodyBytes };
  const conversation = conversationParam();
  const blocked = validate("param", v.object({ userId }), { what: "user id" });
  const member = validate("param", v.object({ id: ConversationIdSchema, userId }));

  return new Hono<AppEnv>()
    .post(
      "/v1/conversations",
      describe({
        summary: "Create a conversation (1:1 reused per pair, or a group)",
        description:
          "A user lists the other members (same-structure policy and blocks apply); a service key with conversations:write lists every member, optional owners and a context.",
        tags: ["conversations"],
        security: "user",
        responses: {
          201: { description: "Created" },
          200: { description: "The existing 1:1 conversation of the pair" },
          403: { description: "blocked, or no shared structure" },
          409: { description: "conversation_full" },
        },
      }),
      userOrService,
      jsonBody(CreateConversationSchema, { ...body, what: "conversation" }),
      async (c) => {
        const { conversation, created } = await messaging.create(actorOf(c), c.req.valid("json"));
        return c.json(conversation, created ? 201 : 200);
      },
    )
    .get(
      "/v1/me/conversations",
      describe({
        summary: "The user's conversations, most recent first, with unread counts and presence",
        tags: ["conversations"],
        security: "user",
        responses: {
          200: { description: "Conversations and the unread total (muted ones left out)" },
        },
      }),
      user,
      async (c) => c.json(await messaging.list(c.get("user").id)),
    )
    .get(
      "/v1/me/blocks",
      describe({
        summary: "The users the user blocked",
        tags: ["conversations"],
        security: "user",
        responses: { 200: { description: "Blocked user ids" } },
      }),
      user,
      async (c) => c.json({ blocks: await messaging.blocks(c.get("user").id) }),
    )
    .put(
      "/v1/me/blocks/:userId",
      describe({
        summary:
          "Block a user: they cannot start a conversation with you and nothing they send reaches you",
        tags: ["conversations"],
        security: "user",
        responses: { 200: { description: "Blocked" } },
      }),
      user,
      blocked,
      async (c) => {
        const other = c.req.valid("param").userId;
        await messaging.block(c.get("user").id, other);
        return c.json({ user: other, blocked: true });
      },
    )
    .delete(
      "/v1/me/blocks/:userId",
      describe({
        summary: "Unblock a user",
        tags: ["conversations"],
        security: "user",
        responses: { 200: { description: "Unblocked" } },
      }),
      user,
      blocked,
      async (c) => {
        const other = c.req.valid("param").userId;
        await messaging.unblock(c.get("user").id, other);
        return c.json({ user: other, blocked: false });
      },
    )
    .get(
      "/v1/conversations/:id",
      describe({
        summary: "A conversation with its members, roles, read positions and presence",
        tags: ["conversations"],
        security: "user",
        responses: { 200: { description: "The conversation" }, 403: { description: "not_member" } },
      }),
      user,
      conversation,
      async (c) => c.json(await messaging.get(c.get("user").id, c.req.valid("param").id)),
    )
    // History, send, edit and delete, in their place among the routes.
    .route("/", createMessageRoutes(deps))
    .post(
      "/v1/conversations/:id/read",
      describe({
        summary: "Move the read position (to the last message without seq); members get a receipt",
        tags: ["conversations"],
        security: "user",
        responses: { 200: { description: "The read position and what stays unread" } },
      }),
      user,
      conversation,
      jsonBody(ReadConversationSchema, { ...body, what: "read", optional: true }),
      async (c) => {
        const { id } = c.req.valid("param");
        const { read, unread } = await messaging.read(
          c.get("user").id,
          id,
          c.req.valid("json").seq,
        );
        return c.json({ conversation: id, read, unread });
      },
    )
    .post(
      "/v1/conversations/:id/typing",
      describe({
        summary: "Tell the other members the user is typing (throttled)",
        tags: ["conversations"],
        security: "user",
        responses: { 204: { description: "Sent (or throttled)" } },
      }),
      user,
      conversation,
      async (c) => {
        await messaging.typing(c.get("user").id, c.req.valid("param").id);
        return c.body(null, 204);
      },
    )
    .post(
      "/v1/conversations/:id/members",
      describe({
        summary: "Add members (owners, or a service key with conversations:write)",
        tags: ["conversations"],
        security: "user",
        responses: {
          200: { description: "The members" },
          409: { description: "conversation_full" },
        },
      }),
      userOrService,
      conversation,
      jsonBody(AddMembersSchema, { ...body, what: "members" }),
      async (c) => {
        const members = c.req.valid("json").members.map((m) =>
          typeof m === "string" ? { id: m } : m
        );
        return c.json(await messaging.addMembers(actorOf(c), c.req.valid("param").id, members));
      },
    )
    .delete(
      "/v1/conversations/:id/members/:userId",
      describe({
        summary: "Remove a member (owners, or a service key with conversations:write)",
        tags: ["conversations"],
        security: "user",
        responses: { 200: { description: "The members" } },
      }),
      userOrService,
      member,
      async (c) => {
        const { id, userId } = c.req.valid("param");
        return c.json(await messaging.removeMember(actorOf(c), id, userId));
      },
    )
    .post(
      "/v1/conversations/:id/leave",
      describe({
        summary: "Leave a group conversation",
        tags: ["conversations"],
        security: "user",
        responses: { 200: { description: "Left" } },
      }),
      user,
      conversation,
      async (c) => {
        const { id } = c.req.valid("param");
        await messaging.removeMember(actorOf(c), id, c.get("user").id);
        return c.json({ conversation: id, left: true });
      },
    )
    .put(
      "/v1/conversations/:id/mute",
      describe({
        summary: "Mute a conversation (it leaves the unread total)",
        tags: ["conversations"],
        security: "user",
        responses: { 200: { description: "Muted" } },
      }),
      user,
      conversation,
      async (c) => {
        const { id } = c.req.valid("param");
        return c.json({ conversation: id, ...await messaging.mute(c.get("user").id, id, true) });
      },
    )
    .delete(
      "/v1/conversations/:id/mute",
      describe({
        summary: "Unmute a conversation",
        tags: ["conversations"],
        security: "user",
        responses: { 200: { description: "Unmuted" } },
      }),
      user,
      conversation,
      async (c) => {
        const { id } = c.req.valid("param");
        return c.json({ conversation: id, ...await messaging.mute(c.get("user").id, id, false) });
      },
    );
}
