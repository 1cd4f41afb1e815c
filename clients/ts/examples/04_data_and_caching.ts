// Usage example 4: data retrieval and caching, with the TypeScript SDK.
// WidgetData.source: COMPUTED (a miss) then MEMORY (a hit); other filter values are other entries;
// force refresh; the whole dashboard in one batch; a background materialization followed live over
// the watch stream (resumed if it drops), warming the cache. Deletes what it made at the end.
import { JobState } from "../../../gen/ts/dashboard/v1/common_pb.js";
import { ParameterType } from "../../../gen/ts/dashboard/v1/query_pb.js";
import { DataSource, type WidgetData } from "../../../gen/ts/dashboard/v1/widget_pb.js";
import { frameRows, parameterMap, parameterValue } from "../src/node.js";
import { args, connect, expect, main, name, runTag, say, step } from "./_common.js";

const SQL = `SELECT unit, count(*) AS admissions FROM demo.admissions
             WHERE age >= :min_age GROUP BY unit ORDER BY unit`;
const source = (data: WidgetData) => name(DataSource, data.source);
const stamp = (data: WidgetData) => `${data.computeTime?.seconds}.${data.computeTime?.nanos}`;

await main(async () => {
  const a = args();
  const tag = runTag();
  const client = connect(a);

  step("A dashboard whose widgets take the `min_age` filter");
  const board = await client.dashboards.createDashboard({
    dashboard: {
      title: "Cache demo",
      tags: [tag],
      filters: [{ name: "min_age", label: "Minimum age", defaultValue: parameterValue(0) }],
    },
  });
  const query = await client.queries.createQuery({
    query: {
      name: "Admissions per unit by age",
      sql: SQL,
      tags: [tag],
      parameters: [{ name: "min_age", type: ParameterType.INT, defaultValue: parameterValue(0) }],
    },
  });
  const binding = { queryId: query.id, filterBindings: { min_age: "min_age" } };
  const perUnit = await client.widgets.createWidget({
    widget: {
      dashboardId: board.id,
      title: "Per unit",
      position: { x: 0, y: 0, width: 6, height: 3 },
      config: { case: "bar", value: { categoryColumn: "unit", valueColumns: ["admissions"] } },
      query: binding,
    },
  });
  const table = await client.widgets.createWidget({
    widget: {
      dashboardId: board.id,
      title: "Per unit (table)",
      position: { x: 6, y: 0, width: 6, height: 3 },
      config: { case: "table", value: {} },
      query: binding,
    },
  });
  const widgets = await client.widgets.listWidgets({ dashboardId: board.id });
  say(`${widgets.widgets.length} widgets: ${widgets.widgets.map((w) => w.title)}`);
  const fetched = await client.widgets.getWidget({ id: table.id });
  expect(fetched.title === "Per unit (table)", "the widget reads back");

  step("First read: a miss, the query runs; second read: a hit from memory");
  const first = await client.widgets.getWidgetData({ widgetId: perUnit.id });
  const second = await client.widgets.getWidgetData({ widgetId: perUnit.id });
  say(`first  source ${source(first)} computed ${stamp(first)}`);
  say(`second source ${source(second)} computed ${stamp(second)}`);
  expect(first.source === DataSource.COMPUTED, "the first read computes");
  expect(second.source === DataSource.MEMORY, "the second read is a cache hit");
  expect(stamp(first) === stamp(second), "the same entry");

  step("Other filter values are another cache entry");
  const older = await client.widgets.getWidgetData({ widgetId: perUnit.id, filterValues: parameterMap({ min_age: 65 }) });
  const olderAgain = await client.widgets.getWidgetData({ widgetId: perUnit.id, filterValues: parameterMap({ min_age: 65 }) });
  say(`min_age 65: ${source(older)}, then ${source(olderAgain)}`);
  expect(older.source === DataSource.COMPUTED && olderAgain.source === DataSource.MEMORY, "own entry");
  const sum = (data: WidgetData) => frameRows(data.frame!).reduce((n, r) => n + Number(r.admissions), 0);
  say(`${sum(first)} admissions in all, ${sum(older)} aged 65 or more`);
  expect(sum(older) <= sum(first), "fewer seniors than patients");

  step("forceRefresh skips the cache");
  const forced = await client.widgets.getWidgetData({ widgetId: perUnit.id, forceRefresh: true });
  say(`source ${source(forced)}, computed ${stamp(forced)}`);
  expect(forced.source === DataSource.COMPUTED, "a forced refresh computes");

  step("The whole dashboard in one batch call");
  const batch = await client.widgets.batchGetWidgetData({
    requests: [{ widgetId: perUnit.id }, { widgetId: table.id }],
  });
  for (const data of batch.data) say(`${data.widgetId}: ${source(data)}, ${data.frame?.rowCount} rows`);
  expect(batch.data[1]?.source === DataSource.MEMORY, "same query and values: the same cache entry");

  step("Materialize the dashboard for min_age 40 in the background (a worker does it)");
  const job = await client.widgets.materializeDashboard({
    dashboardId: board.id,
    filterValues: parameterMap({ min_age: 40 }),
  });
  const revisions: bigint[] = [];
  const { job: final } = await client.followMaterialization(job.id, {
    timeoutMs: 120_000,
    onProgress: (j) => {
      revisions.push(j.revision);
      say(`revision ${String(j.revision).padStart(2)}  ${String(j.progress?.percent).padStart(3)}%  ${name(JobState, j.state)}  ${j.progress?.message}`);
    },
  });
  say(`job ${final.id}: ${final.progress?.completedSteps} of ${final.progress?.totalSteps} widgets`);
  expect(final.state === JobState.SUCCEEDED, "the job succeeded");
  expect(revisions.every((r, i) => i === 0 || r === (revisions[i - 1] ?? 0n) + 1n), "every revision once, in order");
  const again = await client.widgets.getMaterializationJob({ id: job.id });
  expect(again.revision === final.revision, "the job reads back at its last revision");
  const warmed = await client.widgets.getWidgetData({ widgetId: perUnit.id, filterValues: parameterMap({ min_age: 40 }) });
  say(`reading min_age 40 now: ${source(warmed)}`);
  expect(warmed.source === DataSource.MEMORY, "the worker warmed the cache");

  if (!a.keep) {
    step("Clean up");
    await client.widgets.deleteWidget({ id: table.id });
    await client.dashboards.deleteDashboard({ id: board.id });
    await client.queries.deleteQuery({ id: query.id });
    say("deleted 1 widget, 1 dashboard and 1 query");
  }
});
