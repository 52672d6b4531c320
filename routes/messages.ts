/**
 * A conversation's messages over HTTP: history, send, edit and delete. Mounted by
 * `conversations.ts`, with the conversation routes.
 */

import { Hono } from "hono";
import * as v from "valibot";
import type { RequireUserDeps } from "../src/auth/middleware.ts";
import type { AppEnv } from "../src/auth/principal.ts";
import type { Messaging } from "../src/messaging/messaging.ts";
import { describe } from "../src/openapi.ts";
import { queryInt, validate } from "../src/validate.ts";
import {
  ConversationIdSchema,
  conversationParam,
  name,
  rememberedUser,
  webUrl,
} from "./_conversation_common.ts";
import { jsonBody } from "./_json_body.ts";

/** A file a message points to. */
export const AttachmentSchema = v.strictObject({ url: webUrl, name: name(255) });

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

/** Query of `GET /v1/conversations/:id/messages`. */
export const HistoryQuerySchema = v.object({
  before: v.optional(queryInt(1, Number.MAX_SAFE_INTEGER)),
  limit: v.optional(queryInt(1, 100), "50"),
});

const SeqParamSchema = queryInt(1, Number.MAX_SAFE_INTEGER);

/** Dependencies of {@linkcode createMessageRoutes}. */
export interface MessageRoutesDeps extends RequireUserDeps {
  messaging: Messaging;
  maxBodyBytes: number;
}

/** `/v1/conversations/:id/messages` and `/v1/conversations/:id/messages/:seq`. */
export function createMessageRoutes(deps: MessageRoutesDeps) {
  const { messaging } = deps;
  const user = rememberedUser(deps);
  const body = { maxBytes: deps.maxBodyBytes };
  const conversation = conversationParam();
  const message = validate("param", v.object({ id: ConversationIdSchema, seq: SeqParamSchema }));

  return new Hono<AppEnv>()
    .get(
      "/v1/conversations/:id/messages",
      describe({
        summary: "History, newest first; pass next as before for the older page",
        tags: ["conversations"],
        security: "user",
        responses: {
          200: { description: "Messages and next" },
          403: { description: "not_member" },
        },
      }),
      user,
      conversation,
      validate("query", HistoryQuerySchema),
      async (c) => {
        const query = c.req.valid("query");
        return c.json(
          await messaging.history(c.get("user").id, c.req.valid("param").id, {
            before: query.before,
            limit: query.limit,
          }),
        );
      },
    )
    .post(
      "/v1/conversations/:id/messages",
      describe({
        summary: "Send a message; answered once it is durable",
        description:
          "A resend with the same client_id stores nothing new and answers 200 with the stored message (Idempotent-Replayed: true).",
        tags: ["conversations"],
        security: "user",
        responses: {
          201: { description: "Stored and sent to the members" },
          200: { description: "Resend of a stored message" },
          400: { description: "too_long, empty or invalid" },
          403: { description: "not_member or blocked" },
        },
      }),
      user,
      conversation,
      jsonBody(SendMessageSchema, { ...body, what: "message" }),
      async (c) => {
        const { id } = c.req.valid("param");
        const { message, created } = await messaging.send(
          c.get("user").id,
          id,
          c.req.valid("json"),
        );
        if (!created) c.header("Idempotent-Replayed", "true");
        return c.json(message, created ? 201 : 200);
      },
    )
    .patch(
      "/v1/conversations/:id/messages/:seq",
      describe({
        summary: "Edit one's message; members get a msg frame with change: edit",
        tags: ["conversations"],
        security: "user",
        responses: {
          200: { description: "The edited message" },
          403: { description: "Not the author" },
        },
      }),
      user,
      message,
      jsonBody(EditMessageSchema, { ...body, what: "edit" }),
      async (c) => {
        const { id, seq } = c.req.valid("param");
        return c.json(await messaging.edit(c.get("user").id, id, seq, c.req.valid("json").text));
      },
    )
    .delete(
      "/v1/conversations/:id/messages/:seq",
      describe({
        summary: "Delete a message (author or owner); its text and attachments are erased",
        tags: ["conversations"],
        security: "user",
        responses: {
          200: { description: "The deleted message" },
          404: { description: "No such message" },
        },
      }),
      user,
      message,
      async (c) => {
        const { id, seq } = c.req.valid("param");
        return c.json(await messaging.remove(c.get("user").id, id, seq));
      },
    );
}
