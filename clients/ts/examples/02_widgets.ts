// Usage example 2: widgets of every type on a dashboard's grid, with the TypeScript SDK.
// Seven saved queries on the demo data, one widget of each type (KPI, line, area, bar, table,
// heatmap, map); a cross-filter and a drill-through; an overlapping widget refused; every widget's
// data in one batch; the table narrowed by a click on a bar; PHI masked. Deletes it all at the end.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { MaskingStrategy, ParameterType, type Query } from "../../../gen/ts/dashboard/v1/query_pb.js";
import { BarOrientation, QueryBindingSchema, WidgetSchema, WidgetType } from "../../../gen/ts/dashboard/v1/widget_pb.js";
import { frameRows, parameterValue, TesseraError, type TesseraClient } from "../src/node.js";
import { args, connect, ExampleFailed, expect, explain, main, name, runTag, say, step } from "./_common.js";

const Q = {
  kpi: `SELECT count(*) FILTER (WHERE admitted_at > now() - interval '7 days') AS this_week,
               count(*) FILTER (WHERE admitted_at <= now() - interval '7 days'
                                  AND admitted_at > now() - interval '14 days') AS last_week
        FROM demo.admissions`,
  line: "SELECT admitted_at::date AS day, count(*) AS admissions FROM demo.admissions GROUP BY 1 ORDER BY 1",
  area: `SELECT admitted_at::date AS day, unit, count(*) AS admissions
         FROM demo.admissions GROUP BY 1, 2 ORDER BY 1, 2`,
  bar: `SELECT unit, count(*) AS admissions, round(avg(age), 1) AS mean_age
        FROM demo.admissions GROUP BY unit ORDER BY unit`,
  table: `SELECT patient_name, mrn, unit, age, admitted_at FROM demo.admissions
          WHERE :unit = '' OR unit = :unit ORDER BY admitted_at DESC, id LIMIT 25`,
  heatmap: `SELECT unit, extract(isodow FROM admitted_at)::int AS weekday, count(*) AS admissions
            FROM demo.admissions GROUP BY 1, 2 ORDER BY 1, 2`,
  map: "SELECT site, lat, lon, beds FROM demo.sites ORDER BY site",
} as const;
type Kind = keyof typeof Q;

async function savedQuery(client: TesseraClient, kind: Kind, tag: string): Promise<Query> {
  const table = kind === "table";
  return client.queries.createQuery({
    query: {
      name: `admissions ${kind}`,
      sql: Q[kind],
      tags: [tag],
      parameters: table ? [{ name: "unit", type: ParameterType.STRING, defaultValue: parameterValue("") }] : [],
      sensitiveColumns: table
        ? [
            { column: "patient_name", strategy: MaskingStrategy.REDACT },
            { column: "mrn", strategy: MaskingStrategy.PARTIAL },
          ]
        : [],
    },
  });
}

await main(async () => {
  const a = args();
  const tag = runTag();
  const client = connect(a);

  step("Two dashboards: an overview with a `unit` filter, and a unit detail to drill into");
  const unitFilter = { name: "unit", label: "Unit", defaultValue: parameterValue("") };
  const overview = await client.dashboards.createDashboard({
    dashboard: { title: "Admissions overview", tags: [tag], filters: [unitFilter] },
  });
  const detail = await client.dashboards.createDashboard({
    dashboard: { title: "Unit detail", tags: [tag], filters: [unitFilter] },
  });
  say(`overview ${overview.id}, detail ${detail.id}`);

  step("Seven saved queries, one per widget");
  const queries = {} as Record<Kind, Query>;
  for (const kind of Object.keys(Q) as Kind[]) queries[kind] = await savedQuery(client, kind, tag);
  say(Object.entries(queries).map(([k, q]) => `${k}: v${q.version}`).join(", "));

  const place = (x: number, y: number, width: number, height: number) => ({ x, y, width, height });
  step("One widget of each type on the 12-column grid");
  const specs: Record<Kind, MessageInitShape<typeof WidgetSchema>> = {
    kpi: {
      title: "Admissions this week",
      position: place(0, 0, 3, 2),
      config: {
        case: "kpi",
        value: {
          valueColumn: "this_week",
          comparisonColumn: "last_week",
          format: { thousandsSeparator: true, suffix: " patients" },
          thresholds: [
            { value: 0, color: "#2e7d32" },
            { value: 200, color: "#c62828" },
          ],
        },
      },
    },
    line: {
      title: "Admissions per day",
      position: place(3, 0, 9, 2),
      config: { case: "line", value: { xColumn: "day", yColumns: ["admissions"], yTitle: "patients", showPoints: true } },
    },
    area: {
      title: "Admissions per day and unit",
      position: place(0, 2, 6, 3),
      config: { case: "area", value: { xColumn: "day", yColumns: ["admissions"], seriesColumn: "unit", stacked: true } },
    },
    bar: {
      title: "Admissions per unit",
      position: place(6, 2, 6, 3),
      config: {
        case: "bar",
        value: { categoryColumn: "unit", valueColumns: ["admissions"], orientation: BarOrientation.HORIZONTAL },
      },
      crossFilters: [{ sourceColumn: "unit", filterName: "unit" }],
      drillThrough: { targetDashboardId: detail.id, columnToFilter: { unit: "unit" } },
    },
    table: {
      title: "Latest admissions",
      position: place(0, 5, 12, 4),
      config: {
        case: "table",
        value: {
          columns: [
            { column: "patient_name", label: "Patient" },
            { column: "mrn", label: "MRN" },
            { column: "unit", label: "Unit" },
            { column: "age", label: "Age" },
          ],
          pageSize: 25,
          sortColumn: "admitted_at",
          sortDescending: true,
        },
      },
    },
    heatmap: {
      title: "Admissions by weekday",
      position: place(0, 9, 6, 3),
      config: {
        case: "heatmap",
        value: { xColumn: "weekday", yColumn: "unit", valueColumn: "admissions", colorScheme: "blues" },
      },
    },
    map: {
      title: "Sites and beds",
      position: place(6, 9, 6, 3),
      config: {
        case: "map",
        value: { latitudeColumn: "lat", longitudeColumn: "lon", valueColumn: "beds", labelColumn: "site" },
      },
    },
  };
  const made = {} as Record<Kind, Awaited<ReturnType<typeof client.widgets.createWidget>>>;
  for (const kind of Object.keys(specs) as Kind[]) {
    const binding = { queryId: queries[kind].id, filterBindings: (kind === "table" ? { unit: "unit" } : {}) as Record<string, string> };
    const widget = create(WidgetSchema, specs[kind]);
    widget.dashboardId = overview.id;
    widget.query = create(QueryBindingSchema, binding);
    made[kind] = await client.widgets.createWidget({ widget });
    const p = made[kind].position;
    say(`${name(WidgetType, made[kind].type).padEnd(8)} ${JSON.stringify(made[kind].title)} at x=${p?.x} y=${p?.y} ${p?.width}x${p?.height}`);
  }
  expect(new Set(Object.values(made).map((w) => w.type)).size === 7, "all seven widget types");

  step("A widget overlapping another is refused");
  try {
    await client.widgets.createWidget({
      widget: {
        dashboardId: overview.id,
        title: "Overlap",
        position: place(1, 1, 4, 2),
        config: { case: "kpi", value: { valueColumn: "n" } },
      },
    });
    throw new ExampleFailed("an overlapping widget was accepted");
  } catch (error) {
    if (!(error instanceof TesseraError)) throw error;
    explain(error);
  }

  step("The dashboard, widgets in grid order");
  const board = await client.dashboards.getDashboard({ id: overview.id });
  say(`${board.title}: version ${board.version}, ${board.widgets.length} widgets`);
  expect(board.widgets[0]?.title === "Admissions this week" && board.widgets[1]?.title === "Admissions per day", "grid order");

  step("Every widget's data in one batch call");
  const kinds = Object.keys(made) as Kind[];
  const batch = await client.widgets.batchGetWidgetData({ requests: kinds.map((k) => ({ widgetId: made[k].id })) });
  batch.data.forEach((data, i) => {
    const columns = data.frame?.columns.map((c) => c.name).join(", ");
    say(`${kinds[i]?.padEnd(8)} ${String(data.frame?.rowCount).padStart(4)} rows  [${columns}]${data.masked ? "  (PHI masked)" : ""}`);
    expect((data.frame?.rowCount ?? 0n) > 0n, `the ${kinds[i]} widget has data (is the demo data loaded?)`);
  });

  step("A click on the 'Surgery' bar: the cross-filter narrows the table");
  const filtered = await client.widgets.getWidgetData({
    widgetId: made.table.id,
    crossFilters: [{ filterName: "unit", value: parameterValue("Surgery"), sourceWidgetId: made.bar.id }],
  });
  const rows = frameRows(filtered.frame!);
  const units = new Set(rows.map((r) => r.unit));
  say(`${rows.length} rows, units ${[...units]}; first: ${rows[0]?.patient_name} ${rows[0]?.mrn}`);
  expect(units.size === 1 && units.has("Surgery"), "only Surgery admissions");
  expect(filtered.masked, "PHI masked for a caller without phi:read");

  const drill = made.bar.drillThrough;
  say(`drill-through: a bar opens dashboard ${drill?.targetDashboardId} with ${JSON.stringify(drill?.columnToFilter)}`);

  if (!a.keep) {
    step("Clean up");
    for (const id of [overview.id, detail.id]) await client.dashboards.deleteDashboard({ id });
    for (const query of Object.values(queries)) await client.queries.deleteQuery({ id: query.id });
    say("deleted 2 dashboards and 7 queries");
  }
});
