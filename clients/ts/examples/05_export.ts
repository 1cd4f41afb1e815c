// Usage example 5: export, with the TypeScript SDK.
// A published dashboard with a KPI, a bar chart, a line chart and a table; a PDF (A4 landscape,
// margins, header, footer) and a PNG (2x, 1024 px) followed live over the watch stream and
// downloaded with size and sha256 verified; a batch export; the dashboard's exports.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { JobState } from "../../../gen/ts/dashboard/v1/common_pb.js";
import {
  ExportFormat,
  ExportStage,
  Orientation,
  PaperSize,
  type ExportJob,
  type ExportOptionsSchema,
} from "../../../gen/ts/dashboard/v1/export_pb.js";
import type { WidgetSchema } from "../../../gen/ts/dashboard/v1/widget_pb.js";
import { downloadToFile, type TesseraClient } from "../src/node.js";
import { args, connect, expect, main, name, runTag, say, step } from "./_common.js";

const PDF_MAGIC = "%PDF-";
const PNG_MAGIC = "\x89PNG\r\n\x1a\n";

function progress(job: ExportJob): void {
  say(
    `revision ${String(job.revision).padStart(2)} ${String(job.progress?.percent).padStart(3)}% ` +
      `${name(JobState, job.state).padEnd(9)} ${name(ExportStage, job.stage).padEnd(9)} ${job.progress?.message}`,
  );
}

async function build(client: TesseraClient, tag: string): Promise<{ boardId: string; queryIds: string[] }> {
  const board = await client.dashboards.createDashboard({ dashboard: { title: "Monthly admissions report", tags: [tag] } });
  const specs: Array<[string, MessageInitShape<typeof WidgetSchema>["config"]]> = [
    ["SELECT count(*) AS admissions FROM demo.admissions", { case: "kpi", value: { valueColumn: "admissions" } }],
    [
      "SELECT unit, count(*) AS admissions FROM demo.admissions GROUP BY unit ORDER BY unit",
      { case: "bar", value: { categoryColumn: "unit", valueColumns: ["admissions"] } },
    ],
    [
      "SELECT admitted_at::date AS day, count(*) AS admissions FROM demo.admissions GROUP BY 1 ORDER BY 1",
      { case: "line", value: { xColumn: "day", yColumns: ["admissions"] } },
    ],
    [
      "SELECT unit, age, patient_name FROM demo.admissions ORDER BY admitted_at DESC, id LIMIT 40",
      { case: "table", value: {} },
    ],
  ];
  const queryIds: string[] = [];
  for (const [i, [sql, config]] of specs.entries()) {
    const query = await client.queries.createQuery({
      query: {
        name: `report ${i}`,
        sql,
        tags: [tag],
        sensitiveColumns: sql.includes("patient_name") ? [{ column: "patient_name" }] : [],
      },
    });
    queryIds.push(query.id);
    await client.widgets.createWidget({
      widget: {
        dashboardId: board.id,
        title: `Part ${i + 1}`,
        position: { x: (i % 2) * 6, y: Math.floor(i / 2) * 4, width: 6, height: 4 },
        query: { queryId: query.id },
        config,
      },
    });
  }
  await client.dashboards.publishDashboard({ id: board.id });
  return { boardId: board.id, queryIds };
}

async function exportOne(
  client: TesseraClient,
  boardId: string,
  format: ExportFormat,
  options: MessageInitShape<typeof ExportOptionsSchema>,
  destination: string,
) {
  const created = await client.exports.createExport({ dashboardId: boardId, format, options });
  const { job } = await client.followExport(created.id, { start: created, onProgress: progress, timeoutMs: 180_000 });
  const download = await downloadToFile(client, job.id, destination, { timeoutMs: 60_000 });
  return { job, ...download };
}

await main(async () => {
  const a = args();
  const tag = runTag();
  const client = connect(a);

  step("A published dashboard with a KPI, a bar chart, a line chart and a table");
  const { boardId, queryIds } = await build(client, tag);
  say(`dashboard ${boardId}`);

  step("PDF: A4 landscape, 12 mm margins, a header and a footer");
  const pdf = await exportOne(
    client,
    boardId,
    ExportFormat.PDF,
    {
      paperSize: PaperSize.A4,
      orientation: Orientation.LANDSCAPE,
      margins: { topMm: 12, rightMm: 12, bottomMm: 12, leftMm: 12 },
      headerText: "North General - admissions",
      footerText: "Confidential",
    },
    a.out,
  );
  say(`${pdf.path}: ${pdf.file.sizeBytes} bytes, ${pdf.file.pageCount} page(s), sha256 ${pdf.file.sha256.slice(0, 16)}...`);
  expect((await readFile(pdf.path)).subarray(0, 5).toString("latin1") === PDF_MAGIC, "a PDF file");
  expect(pdf.job.options?.paperSize === PaperSize.A4, "the options the job reports are the ones asked for");

  step("PNG: 2x device scale, 1024 CSS px wide");
  const png = await exportOne(client, boardId, ExportFormat.PNG, { scaleFactor: 2, widthPx: 1024 }, path.join(a.out, "report.png"));
  say(`${png.path}: ${png.file.widthPx}x${png.file.heightPx} px, ${png.file.sizeBytes} bytes`);
  expect((await readFile(png.path)).subarray(0, 8).toString("latin1") === PNG_MAGIC, "a PNG file");
  expect(png.file.widthPx === 2048, "1024 CSS px at 2x");

  step("Batch: Letter portrait and Legal landscape in one call");
  const batch = await client.exports.batchCreateExports({
    requests: [
      { dashboardId: boardId, format: ExportFormat.PDF, options: { paperSize: PaperSize.LETTER, orientation: Orientation.PORTRAIT } },
      { dashboardId: boardId, format: ExportFormat.PDF, options: { paperSize: PaperSize.LEGAL, orientation: Orientation.LANDSCAPE } },
    ],
  });
  for (const created of batch.exports) {
    const { job } = await client.followExport(created.id, { start: created, timeoutMs: 180_000 });
    const file = await downloadToFile(client, job.id, path.join(a.out, `batch-${name(PaperSize, job.options?.paperSize ?? 0)}.pdf`));
    say(`${name(PaperSize, job.options?.paperSize ?? 0).padEnd(7)} ${file.path}: ${file.file.pageCount} page(s), ${file.file.sizeBytes} bytes`);
  }
  expect(batch.exports.length === 2, "both files");

  step("The dashboard's exports, newest first");
  const listed: ExportJob[] = [];
  for await (const job of client.pages(client.exports.listExports, { dashboardId: boardId, pageSize: 3 }, (r) => r.exports)) {
    listed.push(job);
    say(`${job.id} ${name(ExportFormat, job.format)} ${name(JobState, job.state)} by ${job.requestedBy}`);
  }
  expect(listed.length === 4, "four exports");

  if (!a.keep) {
    step("Clean up");
    await client.dashboards.deleteDashboard({ id: boardId });
    for (const id of queryIds) await client.queries.deleteQuery({ id });
    say(`deleted the dashboard and its queries; the files stay in ${a.out}`);
  }
});
