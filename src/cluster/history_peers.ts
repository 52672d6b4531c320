/**
 * How the ops charts of one node reach the others' over the bus: each live node (by its
 * bus heartbeat) is asked for its own history by RPC, and answers with its own. A node
 * slow to answer is left out of that answer rather than waited for.
 */

import { type HistoryPeers, isHistory } from "../ops/cluster_history.ts";
import type { Bus } from "./bus.ts";
import type { BusRpc } from "./bus_rpc.ts";

/** The RPC method a node's own history is asked with. */
const METHOD = "ops.history";
/** How long a node's history is waited for. */
const TIMEOUT_MS = 2_000;

/** The history peers of the node on `bus`, asking and answering through `rpc`. */
export function createHistoryPeers(bus: Bus, rpc: BusRpc): HistoryPeers {
  return {
    async others() {
      const nodes = (await bus.nodes()).map((n) => n.id).filter((id) => id !== bus.node);
      const answers = await Promise.all(nodes.map(async (node) => {
        const history = await rpc.call(node, METHOD, null, { timeoutMs: TIMEOUT_MS })
          .catch(() => undefined);
        return isHistory(history) ? [{ node, history }] : [];
      }));
      return answers.flat();
    },
    serve: (own) => void rpc.handle(METHOD, () => own()),
  };
}
