// Client-side load balancing for Node: several server addresses ("h1:p1,h2:p2"), each call to the
// next one in turn, as the Python client's `round_robin` does. An address that answered
// UNAVAILABLE (refused, reset, draining) leaves the rotation for a cool-down, so while one server
// is down the calls go to the others and the client's retry of that one call is the only cost.
import { Code, ConnectError, type Transport } from "@connectrpc/connect";

export interface RoundRobinOptions {
  /** How long an address that answered UNAVAILABLE is left out (default 1 s). */
  coolDownMs?: number;
  now?: () => number;
}

type AnyCall = (...args: unknown[]) => Promise<unknown>;

export function roundRobin(transports: readonly Transport[], options: RoundRobinOptions = {}): Transport {
  if (transports.length === 0) throw new Error("no server address given");
  if (transports.length === 1) return transports[0];
  const coolDownMs = options.coolDownMs ?? 1_000;
  const now = options.now ?? Date.now;
  const downUntil = transports.map(() => 0);
  let next = 0;

  const pick = (): number => {
    const at = now();
    for (let step = 0; step < transports.length; step++) {
      const index = (next + step) % transports.length;
      if (downUntil[index] <= at) {
        next = index + 1;
        return index;
      }
    }
    // Every address is cooling down: try them in turn rather than fail without trying.
    const index = next % transports.length;
    next = index + 1;
    return index;
  };

  const through = (kind: "unary" | "stream"): AnyCall => async (...args) => {
    const index = pick();
    try {
      return await (transports[index][kind] as unknown as AnyCall)(...args);
    } catch (error) {
      if (ConnectError.from(error).code === Code.Unavailable) downUntil[index] = now() + coolDownMs;
      throw error;
    }
  };

  return { unary: through("unary"), stream: through("stream") } as unknown as Transport;
}
