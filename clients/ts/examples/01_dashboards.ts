// Usage example 1: creating and configuring a dashboard, with the TypeScript SDK over gRPC.
// Creates a dashboard with tags, metadata, a grid layout and filters; updates it with a field mask
// and its etag (and shows a stale write refused); shows invalid input answered with field
// violations; publishes it; walks its versions and restores one; finds it by tag; deletes it.
import { Visibility } from "../../../gen/ts/dashboard/v1/dashboard_pb.js";
import { parameterValue } from "../src/node.js";
import { args, connect, expect, main, name, refused, runTag, say, step } from "./_common.js";
import { VersionReason } from "../../../gen/ts/dashboard/v1/dashboard_pb.js";

await main(async () => {
  const a = args();
  const tag = runTag();
  const client = connect(a);

  step("Create a dashboard: tags, metadata, layout, filters");
  const board = await client.dashboards.createDashboard({
    dashboard: {
      title: "Emergency department",
      description: "Admissions and beds, refreshed every five minutes.",
      tags: ["ed", "operations", tag],
      metadata: { fields: { team: { kind: { case: "stringValue", value: "ED operations" } } } },
      layout: { rowHeight: 90, gap: 12 },
      filters: [
        { name: "unit", label: "Unit", defaultValue: parameterValue("Emergency") },
        { name: "min_age", label: "Minimum age", defaultValue: parameterValue(18) },
      ],
    },
  });
  say(`created ${board.id} in facility ${board.facilityId}: version ${board.version}, etag ${board.etag}`);
  say(`grid of ${board.layout?.columns} columns, rows ${board.layout?.rowHeight} px; filters ${board.filters.map((f) => f.name)}`);
  expect(board.version === 1n && board.layout?.columns === 12, "a new dashboard is version 1 on a 12-column grid");

  step("Rename it: only the fields in the mask change, and the etag guards the write");
  const renamed = await client.dashboards.updateDashboard({
    dashboard: { ...board, title: "ED overview", description: "not in the mask, so not written" },
    updateMask: { paths: ["title"] },
  });
  say(`title ${JSON.stringify(renamed.title)}, description unchanged, now version ${renamed.version}`);
  expect(renamed.title === "ED overview" && renamed.description === board.description, "mask respected");

  step("A write based on a stale copy is refused (ABORTED), and nothing changes");
  const stale = await refused("ABORTED", () =>
    client.dashboards.updateDashboard({ dashboard: board, updateMask: { paths: ["title"] } }),
  );
  expect(stale.reason === "ETAG_MISMATCH", "the reason says the etag is stale");

  step("Invalid input: every bad field is named");
  const invalid = await refused("INVALID_ARGUMENT", () =>
    client.dashboards.createDashboard({
      dashboard: { title: "x".repeat(201), tags: ["Not A Tag"], layout: { gap: 500 } },
    }),
  );
  expect(invalid.fieldViolations.length >= 3, "title, tag and gap are all reported");

  step("Make it public for the facility and publish the current version");
  const pub = await client.dashboards.updateDashboard({
    dashboard: { ...renamed, visibility: Visibility.PUBLIC },
    updateMask: { paths: ["visibility"] },
  });
  const published = await client.dashboards.publishDashboard({ id: pub.id, etag: pub.etag });
  say(`published version ${published.publishedVersion}`);

  step("Version history (newest first), then restore version 1 as a new version");
  for await (const version of client.pages(
    client.dashboards.listDashboardVersions,
    { dashboardId: board.id, pageSize: 2 },
    (r) => r.versions,
  )) {
    const reason = name(VersionReason, version.reason).toLowerCase();
    say(`v${version.version} ${reason} by ${version.authorId}${version.published ? " (published)" : ""}`);
  }
  const v1 = await client.dashboards.getDashboardVersion({ dashboardId: board.id, version: 1n });
  say(`version 1 was titled ${JSON.stringify(v1.snapshot?.title)}`);
  const restored = await client.dashboards.restoreDashboardVersion({
    dashboardId: board.id,
    version: 1n,
    etag: published.etag,
  });
  say(`restored: title ${JSON.stringify(restored.title)}, now version ${restored.version}`);
  expect(restored.title === "Emergency department" && restored.version === 4n, "restore writes version 4");
  expect(restored.publishedVersion === 3n, "the published version stays what it was");

  step("Find it by tag");
  const found = [];
  for await (const d of client.pages(client.dashboards.listDashboards, { tags: [tag] }, (r) => r.dashboards)) found.push(d);
  say(`${found.length} dashboard(s) tagged ${tag}: ${found.map((d) => d.title)}`);
  expect(found.length === 1 && found[0]?.id === board.id, "exactly this run's dashboard");

  if (!a.keep) {
    step("Clean up");
    await client.dashboards.deleteDashboard({ id: board.id });
    say(`deleted ${board.id}`);
  }
});
