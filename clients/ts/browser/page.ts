// A page that lists dashboards and shows a widget's data through the SDK's browser entry point
// (Connect protocol by default, or gRPC-Web), bundled with esbuild (clients/ts/build-browser.sh).
// Configured by its URL: ?baseUrl=<the server's HTTP face>&token=<JWT>&protocol=connect|grpc-web
// (&binary=false: Connect with JSON bodies)&widget=<id>.
import { createBrowserClient, frameRows, TesseraError } from "../src/browser.js";

const params = new URLSearchParams(location.search);
const client = createBrowserClient({
  baseUrl: params.get("baseUrl") ?? location.origin,
  token: params.get("token") ?? undefined,
  protocol: params.get("protocol") === "grpc-web" ? "grpc-web" : "connect",
  binary: params.get("binary") !== "false",
  retry: { maxAttempts: 2, initialBackoffMs: 50 },
  timeoutMs: 10_000,
});

function show(id: string, value: unknown): void {
  const element = document.getElementById(id);
  // int64 values arrive as bigint, which JSON.stringify refuses: shown as strings (as proto3 JSON does).
  const json = (_key: string, item: unknown) => (typeof item === "bigint" ? item.toString() : item);
  if (element) element.textContent = typeof value === "string" ? value : JSON.stringify(value, json);
}

function describe(error: unknown) {
  if (error instanceof TesseraError) {
    return {
      code: error.codeName,
      reason: error.reason,
      message: error.rawMessage,
      fieldViolations: error.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
    };
  }
  return { code: "CLIENT", reason: "", message: String(error), fieldViolations: [] };
}

async function main(): Promise<void> {
  try {
    const listed = await client.dashboards.listDashboards({ pageSize: 20 });
    const list = document.getElementById("dashboards");
    for (const board of listed.dashboards) {
      const item = document.createElement("li");
      item.dataset.id = board.id;
      item.textContent = `${board.title} (v${board.version}, ${board.widgets.length} widgets)`;
      list?.append(item);
    }
    show("dashboards-status", `${listed.dashboards.length} dashboards`);
    const widgetId = params.get("widget") ?? listed.dashboards.flatMap((b) => b.widgets)[0]?.id;
    if (widgetId) {
      const data = await client.widgets.getWidgetData({ widgetId });
      show("widget-data", { widgetId, source: data.source, masked: data.masked, rows: frameRows(data.frame!) });
    } else {
      show("widget-data", { widgetId: null });
    }
  } catch (error) {
    show("dashboards-status", describe(error));
  }
  try {
    await client.dashboards.createDashboard({ dashboard: { title: "x".repeat(201), tags: ["Not A Tag"] } });
    show("bad-request", { code: "OK" });
  } catch (error) {
    show("bad-request", describe(error));
  }
  document.body.dataset.done = "true";
}

void main();
