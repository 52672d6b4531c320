/**
 * Traces with OpenTelemetry: one trace per event, from `POST /v1/events` (or the ingest)
 * through its fan-out to each user's send, and one per chat message, from `msg.send`
 * through its conversation's commit to each member's send.
 *
 * Spans go to the global tracer provider of `@opentelemetry/api`: Deno registers its own
 * when `OTEL_DENO=true` and exports them over OTLP; tests register an in-memory one. With
 * `RELAIS_TRACES=off` (the default) no {@linkcode Tracing} is made: its users hold
 * `undefined` and the items they pass on carry no trace, so the delivery path pays one
 * `undefined` check per item and allocates nothing.
 *
 * A trace crosses the in-order release of the stream heads and the actors' mailboxes as
 * data: the parent's `SpanContext` rides on the item (`LiveItem.trace`), never in global
 * state.
 */

import {
  type Attributes,
  context,
  type Span,
  type SpanContext,
  SpanStatusCode,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import { withContext } from "@logtape/logtape";

export type { Span, SpanContext };

/** The name relais's tracer is registered under. */
export const TRACER_NAME = "relais";

/** Spans of the event and message paths, started by name. */
export interface Tracing {
  /**
   * Starts a span: a child of `parent` when given, else of the active context (Deno's
   * span of the HTTP request when it traces them), else the root of a new trace.
   */
  start(name: string, parent?: SpanContext, attributes?: Attributes): Span;
  /**
   * Runs `fn` with `trace_id` and `span_id` of `span` on every log record written while it
   * runs, its awaits included.
   */
  logged<T>(span: SpanContext, fn: () => T): T;
  /**
   * Runs `work` under a new span (see `start`), its log records carrying the trace id, and
   * ends the span when the work settles.
   */
  run<T>(
    name: string,
    attributes: Attributes,
    work: (trace: SpanContext) => Promise<T>,
    parent?: SpanContext,
  ): Promise<T>;
}

/** Creates the tracing of one process. */
export function createTracing(): Tracing {
  // Asked at the first span, so that a provider registered after start-up is used.
  let tracer: Tracer | undefined;
  const tracing: Tracing = {
    start(name, parent, attributes) {
      tracer ??= trace.getTracer(TRACER_NAME);
      const active = context.active();
      return tracer.startSpan(
        name,
        attributes ? { attributes } : {},
        parent ? trace.setSpanContext(active, parent) : active,
      );
    },
    logged: (span, fn) => withContext({ trace_id: span.traceId, span_id: span.spanId }, fn),
    run(name, attributes, work, parent) {
      const span = tracing.start(name, parent, attributes);
      const ids = span.spanContext();
      return endWhenSettled(span, tracing.logged(ids, () => work(ids)));
    },
  };
  return tracing;
}

/** Ends `span` once `work` settles, marking it failed when `work` rejects; returns `work`. */
export function endWhenSettled<T>(span: Span, work: Promise<T>): Promise<T> {
  work.then(
    () => span.end(),
    (error) => {
      const message = error instanceof Error ? error.message : String(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      span.end();
    },
  );
  return work;
}
