/** The ops page's metrics card: the figures it takes from `/metrics`. */

/** Sums the samples of a Prometheus metric whose labels match `where`. */
function sum(text: string, name: string, where: (labels: string) => boolean = () => true): number {
  let total = 0;
  const pattern = new RegExp(`^${name}(?:\\{([^}]*)\\})? ([0-9.eE+-]+|NaN)$`, "gm");
  for (const match of text.matchAll(pattern)) {
    if (where(match[1] ?? "")) total += Number(match[2]) || 0;
  }
  return total;
}

/** The card's figures from the Prometheus text of `/metrics`. */
export function summarize(text: string): Record<string, number> {
  const latencySum = sum(text, "relais_publish_to_deliver_seconds_sum");
  const latencyCount = sum(text, "relais_publish_to_deliver_seconds_count");
  return {
    ws: sum(text, "relais_connections", (l) => l.includes('transport="ws"')),
    sse: sum(text, "relais_connections", (l) => l.includes('transport="sse"')),
    poll: sum(text, "relais_connections", (l) => l.includes('transport="poll"')),
    users: sum(text, "relais_actors", (l) => l.includes('kind="user"')),
    conversations: sum(text, "relais_actors", (l) => l.includes('kind="conversation"')),
    events: sum(text, "relais_events_accepted_total"),
    deliveries: sum(text, "relais_deliveries_total"),
    acks: sum(text, "relais_acks_total"),
    redeliveries: sum(text, "relais_redeliveries_total"),
    dead: sum(text, "relais_dead_letters_total"),
    latency: latencyCount > 0 ? Math.round((latencySum / latencyCount) * 1000) : 0,
    errors: sum(text, "relais_http_requests_total", (l) => /status="5\d\d"/.test(l)),
  };
}
