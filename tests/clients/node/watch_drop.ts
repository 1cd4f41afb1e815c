// A materialization watched through a TCP proxy whose connections this program cuts mid-stream
// (as a lost network would) at revision 2: the SDK must reopen the watch with since_revision and
// report every revision once, in order. Prints what it saw as JSON.
import net from "node:net";
import { JobState } from "../../../gen/ts/dashboard/v1/common_pb.js";
import { createNodeClient } from "../../../clients/ts/src/node.js";

const upstream = process.env.TESSERA_ADDRESS ?? "";
const [host, port] = [upstream.slice(0, upstream.lastIndexOf(":")), Number(upstream.slice(upstream.lastIndexOf(":") + 1))];
const open = new Set<net.Socket>();
let connections = 0;
const proxy = net.createServer((downstream) => {
  connections += 1;
  const up = net.connect(port, host);
  for (const socket of [downstream, up]) {
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => undefined);
  }
  downstream.pipe(up).pipe(downstream);
});
await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const address = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
const drop = () => {
  for (const socket of open) socket.destroy();
};

// About a second on a small machine: long enough for the watch to be cut mid-job.
const SLOW_SQL = "SELECT count(*) AS n FROM generate_series(1, 800) a CROSS JOIN generate_series(1, 2000) b";
const retries: string[] = [];
const client = createNodeClient({
  address,
  token: process.env.TESSERA_TOKEN,
  retry: { initialBackoffMs: 50, maxBackoffMs: 500 },
  onRetry: (event) => retries.push(event.error.codeName),
});
const board = await client.dashboards.createDashboard({ dashboard: { title: "Dropped watch" } });
for (const [i, sql] of [SLOW_SQL, "SELECT 1 AS n", "SELECT 2 AS n"].entries()) {
  const query = await client.queries.createQuery({ query: { name: `q${i}`, sql, options: { timeout: { seconds: 60n } } } });
  await client.widgets.createWidget({
    widget: {
      dashboardId: board.id,
      title: `w${i}`,
      position: { x: 0, y: 2 * i, width: 6, height: 2 },
      config: { case: "table", value: {} },
      query: { queryId: query.id },
    },
  });
}
const job = await client.widgets.materializeDashboard({ dashboardId: board.id });
const seen: string[] = [];
let droppedAt = "";
const { job: final, resumes } = await client.followMaterialization(job.id, {
  start: job, // the create call's answer (revision 1): the watch starts after it
  timeoutMs: 120_000,
  onProgress: (j) => {
    seen.push(String(j.revision));
    if (j.revision === 2n) {
      droppedAt = String(j.revision);
      drop();
    }
  },
});
console.log(
  JSON.stringify({
    seen,
    final: String(final.revision),
    succeeded: final.state === JobState.SUCCEEDED,
    resumes,
    retries,
    droppedAt,
    connections,
  }),
);
proxy.close();
process.exit(0);
