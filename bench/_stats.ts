/** Small statistics for the bench: medians across runs, percentiles of latency samples. */

/** The median of the finite values (NaN when there are none). */
export function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** The `q` quantile (0..1) by nearest rank (NaN when there are no samples). */
export function quantile(values: number[], q: number): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))];
}

/** p50, p95, p99 and max of latency samples, in the samples' unit. */
export function percentiles(values: number[]) {
  return {
    p50: quantile(values, 0.5),
    p95: quantile(values, 0.95),
    p99: quantile(values, 0.99),
    max: quantile(values, 1),
    n: values.length,
  };
}

/** Rounds for the report: 3 significant digits, integers kept whole. */
export function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  if (Math.abs(value) >= 100) return Math.round(value);
  return Number(value.toPrecision(3));
}

/** Splits `total` items into `parts` contiguous ranges `[from, to)`. */
export function split(total: number, parts: number, offset = 0): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < parts; i++) {
    const from = offset + Math.floor((total * i) / parts);
    const to = offset + Math.floor((total * (i + 1)) / parts);
    out.push([from, to]);
  }
  return out;
}

/** What {@linkcode turnFigures} answers. */
export type TurnFigures = ReturnType<typeof turnFigures>;

/**
 * The figures of one turn of events to `size` users, each event with the time it was
 * published (`t`), the time its last client got it (`last`) and how many got it.
 */
export function turnFigures(events: { t: number; last: number; count: number }[], size: number) {
  const deliveries = events.reduce((s, e) => s + e.count, 0);
  const elapsedMs = events.at(-1)!.last - events[0].t;
  return {
    events: events.length,
    deliveries,
    expected: size * events.length,
    elapsedMs: round(elapsedMs),
    deliveriesPerSecond: round((deliveries * 1000) / elapsedMs),
    // Publish → last client, per event (median).
    lastDeliveryMs: round(median(events.map((e) => e.last - e.t))),
  };
}
