/** The HTTP operations relais serves, described for the OpenAPI document. */

import { ActorsQuerySchema, DeadLettersQuerySchema } from "../routes/admin.ts";
import { InboxQuerySchema } from "../routes/me.ts";
import type { Operation } from "./openapi.ts";
import { EnvelopeSchema } from "./schemas/envelope.ts";

/** Every documented operation. */
export const OPERATIONS: Operation[] = [
  {
    method: "post",
    path: "/v1/events",
    summary: "Publish an envelope to its audience",
    description:
      "Answers 202 once the event and its per-user stream entries are durable. Re-posting the same metadata.id returns the first result.",
    tags: ["events"],
    security: "service",
    body: EnvelopeSchema,
    responses: {
      202: { description: "Accepted: durable and fanned out" },
      413: { description: "Body too large" },
      415: { description: "Not JSON" },
    },
  },
  {
    method: "get",
    path: "/v1/events/:id",
    summary: "Delivery status of an event",
    tags: ["events"],
    security: "service",
    responses: {
      200: { description: "Targeted, delivered, acked and failed counts, pending users" },
      404: { description: "Unknown event" },
    },
  },
  {
    method: "get",
    path: "/v1/me/notifications",
    summary: "The user's inbox, newest first (or ascending after a seq)",
    tags: ["inbox"],
    security: "user",
    query: InboxQuerySchema,
    responses: { 200: { description: "A page of items and the unread count" } },
  },
  {
    method: "post",
    path: "/v1/me/notifications/read-all",
    summary: "Mark every inbox item read",
    tags: ["inbox"],
    security: "user",
    responses: { 200: { description: "How many items were marked" } },
  },
  {
    method: "post",
    path: "/v1/me/notifications/:id/read",
    summary: "Mark one inbox item read",
    tags: ["inbox"],
    security: "user",
    responses: { 200: { description: "Marked" }, 404: { description: "Unknown item" } },
  },
  {
    method: "post",
    path: "/v1/me/notifications/:id/ack",
    summary: "Acknowledge an item",
    tags: ["inbox"],
    security: "user",
    responses: { 200: { description: "Acknowledged" }, 404: { description: "Unknown item" } },
  },
  {
    method: "post",
    path: "/v1/connect-tickets",
    summary: "A single-use ticket (60 s) to open WS, SSE or poll without a token in a URL",
    tags: ["realtime"],
    security: "user",
    responses: { 201: { description: "The ticket and its expiry" } },
  },
  {
    method: "get",
    path: "/v1/ws",
    summary:
      "WebSocket, subprotocol relais.v1 (hello, ack, read, ping → welcome, event, pong, error)",
    tags: ["realtime"],
    security: "none",
    responses: {
      101: { description: "Switching protocols" },
      400: { description: "Not an upgrade" },
    },
  },
  {
    method: "get",
    path: "/v1/admin/actors",
    summary: "Live actors",
    tags: ["ops"],
    security: "admin",
    query: ActorsQuerySchema,
    responses: { 200: { description: "Actors with their state value" } },
  },
  {
    method: "get",
    path: "/v1/admin/actors/:kind/:id",
    summary: "One actor's XState snapshot and pending timers",
    tags: ["ops"],
    security: "admin",
    responses: { 200: { description: "Snapshot" }, 404: { description: "No such live actor" } },
  },
  {
    method: "get",
    path: "/v1/admin/dead-letters",
    summary: "Items never acknowledged within their retry limit, newest first",
    tags: ["ops"],
    security: "admin",
    query: DeadLettersQuerySchema,
    responses: { 200: { description: "Dead letters" } },
  },
  {
    method: "get",
    path: "/healthz",
    summary: "Liveness",
    tags: ["ops"],
    security: "none",
    responses: { 200: { description: "Alive" } },
  },
  {
    method: "get",
    path: "/readyz",
    summary: "Readiness (the store answers)",
    tags: ["ops"],
    security: "none",
    responses: { 200: { description: "Ready" }, 503: { description: "Not ready" } },
  },
  {
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics",
    tags: ["ops"],
    security: "none",
    responses: { 200: { description: "Prometheus text format" } },
  },
];
