/**
 * The ingest as the app wires it: each change published as `POST /v1/events` would (a
 * trace of its own when traces are on, counted in the accepted events), the kill switches
 * asked before publishing and before reading.
 */

import type { Guard } from "../controls/guard.ts";
import type { Publisher } from "../delivery/publisher.ts";
import type { Metrics } from "../metrics.ts";
import type { SpanContext, Tracing } from "../tracing.ts";
import type { ChangeStream } from "./change_stream.ts";
import { createIngest, type Ingest, INGEST_PUBLISHER } from "./ingest.ts";
import type { IngestRule } from "./rules.ts";

/** What {@linkcode wireIngest} needs. */
export interface IngestWiring {
  stream: ChangeStream;
  group: string;
  rules: readonly IngestRule[];
  claimIdleMs: number;
  publisher: Publisher;
  guard: Guard;
  metrics: Metrics;
  tracing?: Tracing;
  onError(message: string, error: unknown): void;
}

/** Whether `check` passes, rather than throwing. */
function passes(check: () => void): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

/** Creates the ingest (not started) over the app's publisher and kill switches. */
export function wireIngest(deps: IngestWiring): Ingest {
  const { publisher, guard, metrics, tracing } = deps;
  return createIngest({
    stream: deps.stream,
    group: deps.group,
    rules: deps.rules,
    claimIdleMs: deps.claimIdleMs,
    async publish(envelope) {
      const publish = (trace?: SpanContext) =>
        publisher.publish(envelope, { publishedBy: INGEST_PUBLISHER, ...(trace ? { trace } : {}) });
      // Traced: each ingested change's event is the root of its trace.
      const published = tracing
        ? await tracing.run("ingest.change", {
          "relais.event.id": envelope.metadata.id,
          "relais.event.type": envelope.metadata.type,
        }, publish)
        : await publish();
      if (!published.replayed) metrics.eventsAccepted.inc({ type: envelope.metadata.type });
      return published;
    },
    publishable: (type) => passes(() => guard.assertPublishable(type)),
    paused: () => !passes(() => guard.assertSystemEnabled("ingest")),
    metrics,
    onError: deps.onError,
  });
}
