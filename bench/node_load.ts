// `node build/ts/bench/node_load.js ADDRESS TOKEN WIDGET_ID CONCURRENCY TOTAL`: the Node SDK's side
// of bench/clients.py: the TypeScript SDK over gRPC reading one widget's data with CONCURRENCY
// calls in flight until TOTAL are done; prints requests per second and latency percentiles as JSON.
import { DataSource } from "../gen/ts/dashboard/v1/widget_pb.js";
import { createNodeClient } from "../clients/ts/src/node.js";

const [address = "", token = "", widgetId = "", concurrencyText = "16", totalText = "2000"] = process.argv.slice(2);
const concurrency = Number(concurrencyText);
const total = Number(totalText);
const client = createNodeClient({ address, token });
const request = { widgetId };

for (let i = 0; i < concurrency; i++) {
  const reply = await client.widgets.getWidgetData(request);
  if (reply.source !== DataSource.MEMORY) throw new Error(`not a cache hit: ${reply.source}`);
}
let remaining = total;
const latencies: number[] = [];
async function caller(): Promise<void> {
  while (remaining > 0) {
    remaining -= 1;
    const started = performance.now();
    await client.widgets.getWidgetData(request);
    latencies.push(performance.now() - started);
  }
}
const started = performance.now();
await Promise.all(Array.from({ length: concurrency }, caller));
const elapsed = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))] ?? 0;
const round = (ms: number) => Math.round(ms * 1000) / 1000;
console.log(
  JSON.stringify({
    throughput_rps: Math.round(total / elapsed),
    p50_ms: round(at(0.5)),
    p99_ms: round(at(0.99)),
    mean_ms: round(latencies.reduce((a, b) => a + b, 0) / latencies.length),
    n: latencies.length,
  }),
);
process.exit(0);
