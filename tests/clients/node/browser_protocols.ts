// The SDK over the server's HTTP port with connect-es's own transports for the browser protocols
// (Connect in binary or JSON, gRPC-Web), from Node so that server streams run through the official
// client: an export followed over its watch to SUCCEEDED and downloaded (size and sha256
// verified), a materialization followed to its end, and a watch of a job nobody has failing with
// its details. Usage: node browser_protocols.js <http host:port> <connect|connect-json|grpc-web>.
// Prints what it saw as JSON.
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { JobState } from "../../../gen/ts/dashboard/v1/common_pb.js";
import { ExportFormat } from "../../../gen/ts/dashboard/v1/export_pb.js";
import { TesseraClient, TesseraError } from "../../../clients/ts/src/index.js";

const [address, protocol] = process.argv.slice(2);
const baseUrl = `http://${address}`;
const transport =
  protocol === "grpc-web"
    ? createGrpcWebTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true })
    : createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: protocol !== "connect-json" });
const client = new TesseraClient({ transport, token: process.env.TESSERA_TOKEN, timeoutMs: 120_000 });

const board = await client.dashboards.createDashboard({ dashboard: { title: `Over ${protocol}` } });
const query = await client.queries.createQuery({ query: { name: `over ${protocol}`, sql: "SELECT 3 AS n" } });
await client.widgets.createWidget({
  widget: {
    dashboardId: board.id,
    title: "Three",
    position: { x: 0, y: 0, width: 3, height: 2 },
    query: { queryId: query.id },
    config: { case: "kpi", value: { valueColumn: "n" } },
  },
});
await client.dashboards.publishDashboard({ id: board.id });

const created = await client.exports.createExport({ dashboardId: board.id, format: ExportFormat.PDF });
const revisions: string[] = [];
const followed = await client.followExport(created.id, { onProgress: (job) => revisions.push(String(job.revision)) });
const download = await client.download(created.id);
const magic = new TextDecoder().decode(download.bytes.slice(0, 5));

const job = await client.widgets.materializeDashboard({ dashboardId: board.id });
const materialized = await client.followMaterialization(job.id);

let missing: Record<string, unknown> = {};
try {
  for await (const event of client.exports.watchExport({ id: "00000000-0000-4000-8000-000000000000" })) {
    missing = { unexpected: String(event.event.case) };
  }
} catch (error) {
  if (!(error instanceof TesseraError)) throw error;
  missing = { code: error.codeName, reason: error.reason };
}

console.log(
  JSON.stringify({
    protocol,
    export: {
      state: JobState[followed.job.state],
      revisions,
      final: String(followed.job.revision),
      size: download.bytes.length,
      magic,
    },
    declared: String(download.file.sizeBytes),
    materialization: JobState[materialized.job.state],
    missing,
  }),
);
