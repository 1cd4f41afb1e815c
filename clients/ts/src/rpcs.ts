// Every rpc of the eight services with how safe it is to retry: the TypeScript twin of
// tessera_client/rpcs.py, report_rpcs.py, alert_rpcs.py and search_rpcs.py (a test checks that the
// tables agree and cover every method).
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { AlertService } from "../../../gen/ts/dashboard/v1/alert_pb.js";
import { DashboardService } from "../../../gen/ts/dashboard/v1/dashboard_pb.js";
import { ExportService } from "../../../gen/ts/dashboard/v1/export_pb.js";
import { QueryService } from "../../../gen/ts/dashboard/v1/query_pb.js";
import { ReportService } from "../../../gen/ts/dashboard/v1/report_pb.js";
import { SearchService } from "../../../gen/ts/dashboard/v1/search_pb.js";
import { ShareService } from "../../../gen/ts/dashboard/v1/share_pb.js";
import { WidgetService } from "../../../gen/ts/dashboard/v1/widget_pb.js";

/**
 * SAFE        reads: no side effects.
 * KEYED       creates carrying a `request_id`: filled in once per logical call and sent on every
 *             attempt, so the server returns the first result.
 * IDEMPOTENT  writes whose repetition changes nothing (share upsert, revoke, cancel, refresh).
 * UNSAFE      updates, deletes, publish, restore, public-link creation: never retried.
 */
export enum Idempotency {
  SAFE = "safe",
  KEYED = "keyed",
  IDEMPOTENT = "idempotent",
  UNSAFE = "unsafe",
}

export const SERVICES: readonly DescService[] = [
  DashboardService,
  WidgetService,
  QueryService,
  ExportService,
  ShareService,
  ReportService,
  AlertService,
  SearchService,
];

const { SAFE, KEYED, IDEMPOTENT, UNSAFE } = Idempotency;

/** Keyed by "<service type name>/<method name>". */
export const IDEMPOTENCY: Readonly<Record<string, Idempotency>> = {
  "dashboard.v1.DashboardService/CreateDashboard": KEYED,
  "dashboard.v1.DashboardService/GetDashboard": SAFE,
  "dashboard.v1.DashboardService/ListDashboards": SAFE,
  "dashboard.v1.DashboardService/UpdateDashboard": UNSAFE,
  "dashboard.v1.DashboardService/DeleteDashboard": UNSAFE,
  "dashboard.v1.DashboardService/PublishDashboard": UNSAFE,
  "dashboard.v1.DashboardService/ListDashboardVersions": SAFE,
  "dashboard.v1.DashboardService/GetDashboardVersion": SAFE,
  "dashboard.v1.DashboardService/RestoreDashboardVersion": UNSAFE,
  "dashboard.v1.DashboardService/ExportDashboardDocument": SAFE,
  "dashboard.v1.DashboardService/ImportDashboard": KEYED,
  "dashboard.v1.DashboardService/CloneDashboard": KEYED,
  // The batch's own request_id keys it (its items carry none).
  "dashboard.v1.DashboardService/BatchCloneDashboards": KEYED,
  "dashboard.v1.WidgetService/CreateWidget": KEYED,
  "dashboard.v1.WidgetService/GetWidget": SAFE,
  "dashboard.v1.WidgetService/ListWidgets": SAFE,
  "dashboard.v1.WidgetService/UpdateWidget": UNSAFE,
  "dashboard.v1.WidgetService/DeleteWidget": UNSAFE,
  "dashboard.v1.WidgetService/GetWidgetData": SAFE,
  "dashboard.v1.WidgetService/BatchGetWidgetData": SAFE,
  "dashboard.v1.WidgetService/MaterializeDashboard": KEYED,
  "dashboard.v1.WidgetService/GetMaterializationJob": SAFE,
  "dashboard.v1.WidgetService/WatchMaterializationJob": SAFE,
  "dashboard.v1.QueryService/CreateQuery": KEYED,
  "dashboard.v1.QueryService/GetQuery": SAFE,
  "dashboard.v1.QueryService/ListQueries": SAFE,
  "dashboard.v1.QueryService/UpdateQuery": UNSAFE,
  "dashboard.v1.QueryService/DeleteQuery": UNSAFE,
  "dashboard.v1.QueryService/ListQueryVersions": SAFE,
  "dashboard.v1.QueryService/GetQueryVersion": SAFE,
  "dashboard.v1.QueryService/RunQuery": SAFE,
  "dashboard.v1.QueryService/ValidateQuery": SAFE,
  "dashboard.v1.QueryService/RefreshMaterializedView": IDEMPOTENT,
  "dashboard.v1.ExportService/CreateExport": KEYED,
  "dashboard.v1.ExportService/BatchCreateExports": KEYED,
  "dashboard.v1.ExportService/GetExport": SAFE,
  "dashboard.v1.ExportService/ListExports": SAFE,
  "dashboard.v1.ExportService/CancelExport": IDEMPOTENT,
  "dashboard.v1.ExportService/WatchExport": SAFE,
  "dashboard.v1.ExportService/DownloadExport": SAFE,
  "dashboard.v1.ShareService/ShareDashboard": IDEMPOTENT,
  "dashboard.v1.ShareService/UnshareDashboard": UNSAFE,
  "dashboard.v1.ShareService/ListShares": SAFE,
  "dashboard.v1.ShareService/CreatePublicLink": UNSAFE,
  "dashboard.v1.ShareService/ListPublicLinks": SAFE,
  "dashboard.v1.ShareService/RevokePublicLink": IDEMPOTENT,
  "dashboard.v1.ShareService/ListAuditEvents": SAFE,
  "dashboard.v1.ReportService/CreateReportSubscription": KEYED,
  "dashboard.v1.ReportService/GetReportSubscription": SAFE,
  "dashboard.v1.ReportService/ListReportSubscriptions": SAFE,
  "dashboard.v1.ReportService/UpdateReportSubscription": UNSAFE,
  "dashboard.v1.ReportService/DeleteReportSubscription": UNSAFE,
  "dashboard.v1.ReportService/PauseReportSubscription": IDEMPOTENT,
  "dashboard.v1.ReportService/ResumeReportSubscription": IDEMPOTENT,
  "dashboard.v1.ReportService/SendReportNow": KEYED,
  "dashboard.v1.ReportService/ListReportDeliveries": SAFE,
  "dashboard.v1.ReportService/GetReportDelivery": SAFE,
  "dashboard.v1.ReportService/WatchReportDelivery": SAFE,
  "dashboard.v1.AlertService/CreateAlertRule": KEYED,
  "dashboard.v1.AlertService/GetAlertRule": SAFE,
  "dashboard.v1.AlertService/ListAlertRules": SAFE,
  "dashboard.v1.AlertService/UpdateAlertRule": UNSAFE,
  "dashboard.v1.AlertService/DeleteAlertRule": UNSAFE,
  "dashboard.v1.AlertService/SilenceAlertRule": IDEMPOTENT,
  "dashboard.v1.AlertService/PreviewAlertRule": SAFE,
  "dashboard.v1.AlertService/ListAlertEvents": SAFE,
  "dashboard.v1.AlertService/WatchAlertRule": SAFE,
  "dashboard.v1.SearchService/Search": SAFE,
  "dashboard.v1.SearchService/AddFavorite": IDEMPOTENT,
  "dashboard.v1.SearchService/RemoveFavorite": UNSAFE,
  "dashboard.v1.SearchService/ListFavorites": SAFE,
};

export function methodName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/** The idempotency of a method; an rpc missing from the table is a bug (UNSAFE is assumed). */
export function idempotencyOf(method: DescMethod): Idempotency {
  return IDEMPOTENCY[methodName(method)] ?? UNSAFE;
}

/** Methods of the seven services that the table does not name, and names it has that no service does. */
export function tableDrift(): { missing: string[]; unknown: string[] } {
  const actual = SERVICES.flatMap((service) => service.methods.map(methodName));
  const known = new Set(Object.keys(IDEMPOTENCY));
  return {
    missing: actual.filter((name) => !known.has(name)),
    unknown: [...known].filter((name) => !actual.includes(name)),
  };
}
