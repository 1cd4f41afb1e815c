// Every rpc of the seven services, called through the SDK over gRPC against a real server and
// worker (tests/clients/test_ts_sdk.py): prints the methods that answered (recorded by a transport
// interceptor) and what the calls returned, for the Python test to check.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Interceptor } from "@connectrpc/connect";
import { AlertComparison, AlertReducer } from "../../../gen/ts/dashboard/v1/alert_pb.js";
import { SearchResultKind } from "../../../gen/ts/dashboard/v1/search_pb.js";
import { JobState } from "../../../gen/ts/dashboard/v1/common_pb.js";
import { ExportFormat } from "../../../gen/ts/dashboard/v1/export_pb.js";
import { QueryKind } from "../../../gen/ts/dashboard/v1/query_pb.js";
import { TitleConflictPolicy } from "../../../gen/ts/dashboard/v1/dashboard_pb.js";
import { DeliveryState, SubscriptionState } from "../../../gen/ts/dashboard/v1/report_pb.js";
import { ShareLevel } from "../../../gen/ts/dashboard/v1/share_pb.js";
import {
  createNodeClient,
  IDEMPOTENCY,
  linkToken,
  tableDrift,
  TesseraError,
  type TesseraClient,
} from "../../../clients/ts/src/node.js";

const address = process.env.TESSERA_ADDRESS ?? "";
const answered = new Set<string>();
const record: Interceptor = (next) => async (request) => {
  const response = await next(request);
  answered.add(`${request.service.typeName}/${request.method.name}`);
  return response;
};
const client = createNodeClient({ address, token: process.env.TESSERA_TOKEN, interceptors: [record] });
const out: Record<string, unknown> = {};

async function failure(call: () => Promise<unknown>): Promise<TesseraError> {
  try {
    await call();
  } catch (error) {
    if (error instanceof TesseraError) return error;
    throw error;
  }
  throw new Error("the call was expected to fail");
}

async function all<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

async function run(c: TesseraClient) {
  const tag = `node-${crypto.randomUUID().slice(0, 8)}`;
  // --- QueryService
  const validated = await c.queries.validateQuery({ sql: "SELECT unit, count(*) AS n FROM demo.admissions GROUP BY unit" });
  const query = await c.queries.createQuery({
    query: { name: "every rpc", sql: "SELECT unit, count(*) AS n FROM demo.admissions GROUP BY unit ORDER BY unit", tags: [tag] },
  });
  const view = await c.queries.createQuery({
    query: {
      name: "every rpc view",
      kind: QueryKind.MATERIALIZED_VIEW,
      sql: "SELECT facility_id, count(*) AS n FROM demo.sites GROUP BY facility_id",
      viewKeyColumns: ["facility_id"],
      tags: [tag],
    },
  });
  const refreshed = await c.queries.refreshMaterializedView({ id: view.id });
  const gotQuery = await c.queries.getQuery({ id: query.id });
  const updatedQuery = await c.queries.updateQuery({
    query: { ...gotQuery, sql: `${gotQuery.sql} LIMIT 50` },
    updateMask: { paths: ["sql"] },
  });
  const queryVersions = await c.queries.listQueryVersions({ queryId: query.id });
  const queryV1 = await c.queries.getQueryVersion({ queryId: query.id, version: 1n });
  const ran = await c.queries.runQuery({ id: query.id });
  const listedQueries = await c.queries.listQueries({ tags: [tag] });
  out.queries = {
    valid: validated.valid,
    refreshedView: refreshed.id === view.id,
    version: String(updatedQuery.version),
    versions: queryVersions.versions.length,
    v1: String(queryV1.version),
    rows: String(ran.frame?.rowCount),
    listed: listedQueries.queries.length,
  };

  // --- DashboardService (a request id makes a retried create return the first result)
  const requestId = crypto.randomUUID();
  const board = await c.dashboards.createDashboard({ dashboard: { title: "Every rpc", tags: [tag] }, requestId });
  const twin = await c.dashboards.createDashboard({ dashboard: { title: "Every rpc", tags: [tag] }, requestId });
  const gotBoard = await c.dashboards.getDashboard({ id: board.id });
  const updatedBoard = await c.dashboards.updateDashboard({ dashboard: { ...gotBoard, title: "Every rpc 2" }, updateMask: { paths: ["title"] } });
  const published = await c.dashboards.publishDashboard({ id: board.id, etag: updatedBoard.etag });
  const versions = await c.dashboards.listDashboardVersions({ dashboardId: board.id });
  const v1 = await c.dashboards.getDashboardVersion({ dashboardId: board.id, version: 1n });
  const restored = await c.dashboards.restoreDashboardVersion({ dashboardId: board.id, version: 1n, etag: published.etag });
  const listedBoards = await all(c.pages(c.dashboards.listDashboards, { tags: [tag], pageSize: 1 }, (r) => r.dashboards));
  const invalid = await failure(() => c.dashboards.createDashboard({ dashboard: { title: "x".repeat(201), tags: ["Not A Tag"] } }));
  out.dashboards = {
    sameOnRetry: twin.id === board.id,
    title: updatedBoard.title,
    published: String(published.publishedVersion),
    versions: versions.versions.length,
    v1Title: v1.snapshot?.title,
    restored: [restored.title, String(restored.version)],
    listed: listedBoards.map((b) => b.id === board.id),
    invalid: { code: invalid.codeName, reason: invalid.reason, fields: invalid.fieldViolations.map((v) => v.field).sort() },
  };

  // --- WidgetService
  const widget = await c.widgets.createWidget({
    widget: {
      dashboardId: board.id,
      title: "Units",
      position: { x: 0, y: 0, width: 6, height: 3 },
      config: { case: "table", value: {} },
      query: { queryId: query.id },
    },
  });
  const gotWidget = await c.widgets.getWidget({ id: widget.id });
  const updatedWidget = await c.widgets.updateWidget({ widget: { ...gotWidget, title: "Units 2" }, updateMask: { paths: ["title"] } });
  const widgets = await c.widgets.listWidgets({ dashboardId: board.id });
  const data = await c.widgets.getWidgetData({ widgetId: widget.id });
  const batch = await c.widgets.batchGetWidgetData({ requests: [{ widgetId: widget.id }] });
  const job = await c.widgets.materializeDashboard({ dashboardId: board.id });
  const followed = await c.followMaterialization(job.id, { timeoutMs: 120_000 });
  const gotJob = await c.widgets.getMaterializationJob({ id: job.id });
  out.widgets = {
    title: updatedWidget.title,
    listed: widgets.widgets.length,
    rows: String(data.frame?.rowCount),
    batch: batch.data.length,
    job: [followed.job.state === JobState.SUCCEEDED, gotJob.revision === followed.job.revision],
  };

  // --- DashboardService: portability (the document of the board with its widget and query)
  const document = await c.dashboards.exportDashboardDocument({ id: board.id });
  // The board still has the document's title: a validate_only import says what a rename would give.
  const checked = await c.dashboards.importDashboard({
    document,
    validateOnly: true,
    titleConflict: TitleConflictPolicy.RENAME,
  });
  const copy = await c.dashboards.cloneDashboard({ id: board.id, title: "Every rpc copy", requestId: crypto.randomUUID() });
  out.portability = {
    schemaVersion: document.schemaVersion,
    widgets: document.widgets.map((w) => w.queryKey),
    validateOnly: [checked.validateOnly, checked.queries.map((q) => q.key), checked.title === `${document.dashboard?.title} (2)`],
    clone: [copy.dashboard?.title, copy.dashboard?.widgets.length],
  };
  await c.dashboards.deleteDashboard({ id: copy.dashboard!.id });
  // No requestId given: the client fills the batch's, not the items'.
  const copies = await c.dashboards.batchCloneDashboards({ requests: [{ id: board.id, title: "Every rpc batch copy" }] });
  out.batchClone = copies.clones.map((x) => x.dashboard?.title);
  await c.dashboards.deleteDashboard({ id: copies.clones[0].dashboard!.id });

  // --- ShareService
  await c.shares.shareDashboard({ dashboardId: board.id, grantee: { case: "userId", value: "bob" }, level: ShareLevel.VIEW });
  const shares = await c.shares.listShares({ dashboardId: board.id });
  await c.shares.unshareDashboard({ dashboardId: board.id, grantee: { case: "userId", value: "bob" } });
  const link = await c.shares.createPublicLink({ dashboardId: board.id, ttl: { seconds: 600n } });
  const links = await c.shares.listPublicLinks({ dashboardId: board.id });
  const viaLink = await createNodeClient({ address, token: linkToken(link.token) }).dashboards.getDashboard({ id: board.id });
  const revoked = await c.shares.revokePublicLink({ id: link.id });
  const audit = await c.shares.listAuditEvents({ resourceId: board.id, pageSize: 50 });
  out.shares = {
    shares: shares.shares.length,
    links: links.links.length,
    viaLink: viaLink.id === board.id,
    revoked: revoked.revokeTime !== undefined,
    audited: audit.events.length > 0,
  };

  // --- ExportService
  const created = await c.exports.createExport({ dashboardId: board.id, format: ExportFormat.PNG, options: { widthPx: 800 } });
  const exported = await c.followExport(created.id, { start: created, timeoutMs: 180_000 });
  const gotExport = await c.exports.getExport({ id: created.id });
  const download = await c.download(created.id, { chunkSize: 4096 });
  const pair = await c.exports.batchCreateExports({
    requests: [
      { dashboardId: board.id, format: ExportFormat.PDF },
      { dashboardId: board.id, format: ExportFormat.PDF },
    ],
  });
  // A cancel races the worker: an export that ended first answers FAILED_PRECONDITION.
  const cancelled = await Promise.all(
    pair.exports.map((e) =>
      c.exports.cancelExport({ id: e.id }).then(
        () => "cancelled",
        (error: unknown) => {
          if (error instanceof TesseraError && error.codeName === "FAILED_PRECONDITION") return "already ended";
          throw error;
        },
      ),
    ),
  );
  const ended = await Promise.all(pair.exports.map((e) => c.followExport(e.id, { check: false, timeoutMs: 180_000 })));
  const listedExports = await c.exports.listExports({ dashboardId: board.id });
  out.exports = {
    state: exported.job.state === JobState.SUCCEEDED,
    sameRevision: gotExport.revision === exported.job.revision,
    download: { size: download.bytes.length, declared: String(download.file.sizeBytes), sha256: download.file.sha256 },
    batch: pair.exports.length,
    cancelled: cancelled.length,
    ended: ended.map((e) => [JobState.SUCCEEDED, JobState.CANCELLED].includes(e.job.state)),
    listed: listedExports.exports.length,
  };

  // --- ReportService: a webhook to a receiver on loopback, delivered by the worker
  const hooks: string[] = [];
  const receiver = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      hooks.push(body);
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  const subscription = await c.reports.createReportSubscription({
    subscription: {
      dashboardId: board.id,
      title: "Every rpc weekly",
      schedule: { cron: "0 7 * * 1", timeZone: "Europe/Paris" },
      format: ExportFormat.PNG,
      recipients: { webhooks: [hookUrl] },
    },
  });
  const gotSubscription = await c.reports.getReportSubscription({ id: subscription.id });
  const renamed = await c.reports.updateReportSubscription({
    subscription: { id: subscription.id, etag: gotSubscription.etag, title: "Every rpc daily" },
    updateMask: { paths: ["title"] },
  });
  const paused = await c.reports.pauseReportSubscription({ id: subscription.id });
  const resumed = await c.reports.resumeReportSubscription({ id: subscription.id });
  const delivery = await c.reports.sendReportNow({ id: subscription.id });
  const deliveryEvents = await all(c.reports.watchReportDelivery({ id: delivery.id }, { timeoutMs: 180_000 }));
  const last = deliveryEvents[deliveryEvents.length - 1]?.event;
  const gotDelivery = await c.reports.getReportDelivery({ id: delivery.id });
  const deliveries = await c.reports.listReportDeliveries({ subscriptionId: subscription.id });
  const subscriptions = await c.reports.listReportSubscriptions({ dashboardId: board.id });
  await c.reports.deleteReportSubscription({ id: subscription.id });
  receiver.close();
  out.reports = {
    secretOnce: subscription.webhookSecret.length > 0 && gotSubscription.webhookSecret === "",
    title: renamed.title,
    paused: paused.state === SubscriptionState.PAUSED,
    resumed: resumed.state === SubscriptionState.ACTIVE,
    delivered: last?.case === "delivery" && last.value.state === DeliveryState.DELIVERED,
    gotDelivered: gotDelivery.state === DeliveryState.DELIVERED,
    hooks: hooks.length,
    deliveries: deliveries.deliveries.length,
    subscriptions: subscriptions.subscriptions.length,
  };

  // --- AlertService
  const rule = await c.alerts.createAlertRule({
    rule: {
      widgetId: widget.id,
      title: "Every rpc alert",
      column: "n",
      reducer: AlertReducer.MAX,
      comparison: AlertComparison.GREATER,
      threshold: 1_000_000,
      recipients: { webhooks: [hookUrl] },
    },
  });
  const gotRule = await c.alerts.getAlertRule({ id: rule.id });
  const preview = await c.alerts.previewAlertRule({ rule: gotRule });
  const raised = await c.alerts.updateAlertRule({
    rule: { id: rule.id, etag: gotRule.etag, threshold: 2_000_000 },
    updateMask: { paths: ["threshold"] },
  });
  const silenced = await c.alerts.silenceAlertRule({ id: rule.id, until: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600) } });
  const events = await c.alerts.listAlertEvents({ ruleId: rule.id });
  const rules = await c.alerts.listAlertRules({ widgetId: widget.id });
  let watched: string | undefined;
  for await (const event of c.alerts.watchAlertRule({ id: rule.id }, { timeoutMs: 30_000 })) {
    watched = event.event.case;
    break; // the rule first; the stream would go on with heartbeats
  }
  await c.alerts.deleteAlertRule({ id: rule.id });
  out.alerts = {
    previewHolds: preview.holds,
    rows: String(preview.rowCount),
    threshold: raised.threshold,
    silenced: silenced.silencedUntil !== undefined,
    events: events.events.length,
    rules: rules.rules.length,
    watched,
  };

  // --- SearchService
  const favorite = await c.search.addFavorite({ dashboardId: board.id });
  const favorites = await c.search.listFavorites({});
  const found = await c.search.search({
    query: "every rpc",
    kinds: [SearchResultKind.DASHBOARD],
    favoritesFirst: true,
    pageSize: 100,
  });
  await c.search.removeFavorite({ dashboardId: board.id });
  out.search = {
    favorite: favorite.dashboardId === board.id,
    listed: favorites.favorites.some((f) => f.dashboardId === board.id),
    first: found.results[0]?.id === board.id && found.results[0]?.favorite === true,
    highlighted: (found.results[0]?.highlights.length ?? 0) > 0 || found.results[0]?.snippet !== "",
  };

  await c.widgets.deleteWidget({ id: widget.id });
  await c.dashboards.deleteDashboard({ id: board.id });
  await c.queries.deleteQuery({ id: query.id });
  await c.queries.deleteQuery({ id: view.id });
}

await run(client);
console.log(
  JSON.stringify({ answered: [...answered].sort(), out, idempotency: IDEMPOTENCY, drift: tableDrift() }, (_, v) =>
    typeof v === "bigint" ? String(v) : v,
  ),
);
