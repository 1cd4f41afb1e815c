// Usage example 3: parameterised queries, with the TypeScript SDK.
// SQL checked before saving; typed parameters (bounded int, enum list, required date range) bound
// from JS values; bad values refused by name; values never spliced into SQL; versions; a template
// bound to dashboard filters. Deletes what it made at the end.
import { ParameterType } from "../../../gen/ts/dashboard/v1/query_pb.js";
import { dateRange, frameRows, parameterMap, parameterValue, today, type ParameterInput } from "../src/node.js";
import { args, connect, expect, main, name, refused, runTag, say, step } from "./_common.js";

const UNITS = ["Cardiology", "Emergency", "Maternity", "Oncology", "Surgery"];
const SQL = `
SELECT unit, count(*) AS admissions, round(avg(age), 1) AS mean_age
FROM demo.admissions
WHERE age >= :min_age
  AND unit = ANY(:units)
  AND admitted_at::date BETWEEN :period_start AND :period_end
GROUP BY unit
ORDER BY unit
`;
const PARAMETERS = [
  {
    name: "min_age",
    type: ParameterType.INT,
    defaultValue: parameterValue(0),
    min: parameterValue(0),
    max: parameterValue(120),
    description: "Youngest patient counted",
  },
  { name: "units", type: ParameterType.ENUM, list: true, allowedValues: UNITS, defaultValue: parameterValue(UNITS) },
  { name: "period", type: ParameterType.DATE_RANGE, required: true },
];

await main(async () => {
  const a = args();
  const tag = runTag();
  const client = connect(a);
  const lastMonth = dateRange(today(-30), today());

  step("Check SQL before saving it");
  const checked = await client.queries.validateQuery({ sql: SQL, parameters: PARAMETERS });
  say(`valid: ${checked.valid}; placeholders ${checked.placeholders}`);
  expect(checked.valid, "the query is valid");
  const bad = await client.queries.validateQuery({ sql: "DELETE FROM demo.admissions WHERE age > :age" });
  for (const problem of bad.problems) say(`refused at line ${problem.line}, column ${problem.column}: ${problem.message}`);
  expect(!bad.valid, "a write is refused");

  step("Save it with typed parameters");
  const query = await client.queries.createQuery({
    query: { name: "Admissions by unit", description: "per unit, in a period", sql: SQL, parameters: PARAMETERS, tags: [tag] },
  });
  for (const spec of query.parameters) {
    say(`:${spec.name} ${name(ParameterType, spec.type).toLowerCase()}${spec.list ? "[]" : ""}${spec.required ? " required" : ""}`);
  }

  step("Run it with JS values: numbers, arrays and date ranges");
  const result = await client.queries.runQuery({
    id: query.id,
    parameterValues: parameterMap({ min_age: 65, units: ["Cardiology", "Surgery"], period: lastMonth }),
  });
  const rows = frameRows(result.frame!);
  for (const row of rows) say(`${String(row.unit).padEnd(11)} ${String(row.admissions).padStart(4)} admissions, mean age ${row.mean_age}`);
  say(`query version ${result.queryVersion}`);
  expect(rows.every((r) => r.unit === "Cardiology" || r.unit === "Surgery"), "only the units asked for");
  expect(rows.every((r) => Number(r.mean_age) >= 65), "only patients 65 and over");

  step("Bad values are refused, naming the parameter");
  const badValues: Array<Record<string, ParameterInput>> = [
    { min_age: 500, period: lastMonth },
    { units: ["Radiology"], period: lastMonth },
    {},
  ];
  for (const values of badValues) {
    const error = await refused("INVALID_ARGUMENT", () =>
      client.queries.runQuery({ id: query.id, parameterValues: parameterMap(values) }),
    );
    expect(error.fieldViolations.length > 0 || error.reason !== "", "the refusal says what is wrong");
  }

  step("A value is data, never SQL: the driver binds it");
  const byUnit = await client.queries.createQuery({
    query: {
      name: "Admissions of a unit",
      sql: "SELECT count(*) AS admissions FROM demo.admissions WHERE unit = :unit",
      parameters: [{ name: "unit", type: ParameterType.STRING, required: true }],
      tags: [tag],
    },
  });
  const count = async (unit: string) =>
    frameRows((await client.queries.runQuery({ id: byUnit.id, parameterValues: parameterMap({ unit }) })).frame!)[0]
      ?.admissions;
  const honest = await count("Surgery");
  const sneaky = await count("Surgery' OR '1'='1");
  say(`unit 'Surgery': ${honest} admissions; unit "Surgery' OR '1'='1": ${sneaky}`);
  expect(honest && sneaky === 0n, "the quote is part of the value");

  step("Change the SQL: version 2; version 1 still runs");
  const changed = await client.queries.updateQuery({
    query: { ...query, sql: SQL.replace("round(avg(age), 1) AS mean_age", "max(age) AS oldest") },
    updateMask: { paths: ["sql"] },
  });
  const period = parameterMap({ period: lastMonth });
  const latest = await client.queries.runQuery({ id: query.id, parameterValues: period });
  const pinned = await client.queries.runQuery({ id: query.id, parameterValues: period, version: 1n });
  say(`v${changed.version} columns ${latest.frame?.columns.map((c) => c.name)}`);
  say(`v1 columns ${pinned.frame?.columns.map((c) => c.name)}`);
  expect(changed.version === 2n && pinned.queryVersion === 1n, "versions are kept");
  const versions = await client.queries.listQueryVersions({ queryId: query.id });
  const v1 = await client.queries.getQueryVersion({ queryId: query.id, version: 1n });
  say(`${versions.versions.length} versions; v1 still has mean_age: ${v1.snapshot?.sql.includes("mean_age")}`);
  expect(versions.versions.length === 2, "two versions listed");

  step("A template query reused by a widget, its parameters taken from dashboard filters");
  const template = await client.queries.createQuery({
    query: { name: "Admissions template", sql: SQL, parameters: PARAMETERS, template: true, tags: [tag] },
  });
  const board = await client.dashboards.createDashboard({
    dashboard: {
      title: "Older patients",
      tags: [tag],
      filters: [
        { name: "period", label: "Period", defaultValue: lastMonth },
        { name: "age", label: "Minimum age", defaultValue: parameterValue(80) },
      ],
    },
  });
  const widget = await client.widgets.createWidget({
    widget: {
      dashboardId: board.id,
      title: "80 and over, by unit",
      position: { x: 0, y: 0, width: 6, height: 3 },
      config: { case: "bar", value: { categoryColumn: "unit", valueColumns: ["admissions"] } },
      query: {
        queryId: template.id,
        parameterValues: parameterMap({ units: ["Emergency", "Oncology"] }),
        filterBindings: { min_age: "age", period: "period" },
      },
    },
  });
  const total = (frame: Parameters<typeof frameRows>[0]) => frameRows(frame).reduce((n, r) => n + Number(r.admissions), 0);
  const byDefault = await client.widgets.getWidgetData({ widgetId: widget.id });
  const younger = await client.widgets.getWidgetData({ widgetId: widget.id, filterValues: parameterMap({ age: 18 }) });
  say(`80+: ${total(byDefault.frame!)} admissions; 18+ (filter changed): ${total(younger.frame!)}`);
  expect(total(byDefault.frame!) < total(younger.frame!), "the filter value reached the query");
  const templates = await client.queries.listQueries({ template: true, nameContains: "template", tags: [tag] });
  expect(templates.queries.some((q) => q.name === "Admissions template"), "templates are listed");

  if (!a.keep) {
    step("Clean up");
    await client.dashboards.deleteDashboard({ id: board.id });
    for (const id of [query.id, byUnit.id, template.id]) await client.queries.deleteQuery({ id });
    say("deleted 1 dashboard and 3 queries");
  }
});
