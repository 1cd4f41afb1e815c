// Usage example 6: sharing and permissions, with the TypeScript SDK.
// User and role shares; what a viewer may do before, with and after a share; an expiring public
// link (PHI masked), revoked; the audit trail. Deletes what it made at the end.
import { AuditOutcome, Role, ShareLevel } from "../../../gen/ts/dashboard/v1/share_pb.js";
import { MaskingStrategy } from "../../../gen/ts/dashboard/v1/query_pb.js";
import { createNodeClient, frameRows, linkToken } from "../src/node.js";
import { args, connect, expect, main, name, refused, runTag, say, step } from "./_common.js";

const VIEWER = "bob";

await main(async () => {
  const a = args();
  const tag = runTag();
  const client = connect(a);

  step("A dashboard with a widget that reads PHI");
  const query = await client.queries.createQuery({
    query: {
      name: "Latest admissions",
      tags: [tag],
      sql: "SELECT patient_name, unit, age FROM demo.admissions ORDER BY admitted_at DESC, id LIMIT 5",
      sensitiveColumns: [{ column: "patient_name", strategy: MaskingStrategy.REDACT }],
    },
  });
  const board = await client.dashboards.createDashboard({ dashboard: { title: "Ward handover", tags: [tag] } });
  const widget = await client.widgets.createWidget({
    widget: {
      dashboardId: board.id,
      title: "Latest admissions",
      position: { x: 0, y: 0, width: 12, height: 3 },
      config: { case: "table", value: {} },
      query: { queryId: query.id },
    },
  });
  say(`dashboard ${board.id} owned by ${board.ownerId}, private`);

  const viewer = a.viewerToken ? connect(a, a.viewerToken) : undefined;
  if (viewer) {
    step(`Before sharing, ${VIEWER} cannot even see it (NOT_FOUND, not PERMISSION_DENIED)`);
    await refused("NOT_FOUND", () => viewer.dashboards.getDashboard({ id: board.id }));
  }

  step(`Share: VIEW with the user ${VIEWER}, EDIT with every editor of the facility`);
  await client.shares.shareDashboard({ dashboardId: board.id, grantee: { case: "userId", value: VIEWER }, level: ShareLevel.VIEW });
  await client.shares.shareDashboard({ dashboardId: board.id, grantee: { case: "role", value: Role.EDITOR }, level: ShareLevel.EDIT });
  const shares = await client.shares.listShares({ dashboardId: board.id });
  for (const share of shares.shares) {
    const grantee = share.grantee.case === "userId" ? share.grantee.value : name(Role, share.grantee.value ?? 0);
    say(`${String(grantee).padEnd(12)} ${name(ShareLevel, share.level)} (granted by ${share.grantedBy})`);
  }
  expect(shares.shares.length === 2, "two shares");

  if (viewer) {
    step(`Now ${VIEWER} reads it, but a viewer never writes, whatever the share says`);
    const seen = await viewer.dashboards.getDashboard({ id: board.id });
    const data = await viewer.widgets.getWidgetData({ widgetId: widget.id });
    say(`${VIEWER} sees ${JSON.stringify(seen.title)}; first patient ${frameRows(data.frame!)[0]?.patient_name} (masked)`);
    expect(data.masked, "PHI is masked for a viewer without phi:read");
    await refused("PERMISSION_DENIED", () =>
      viewer.dashboards.updateDashboard({ dashboard: { id: board.id, title: "Mine now" }, updateMask: { paths: ["title"] } }),
    );

    step(`Unshare: ${VIEWER} loses access`);
    await client.shares.unshareDashboard({ dashboardId: board.id, grantee: { case: "userId", value: VIEWER } });
    await refused("NOT_FOUND", () => viewer.dashboards.getDashboard({ id: board.id }));
  } else {
    say("(set TESSERA_VIEWER_TOKEN to see the viewer's side)");
  }

  step("A public link: read-only, to the published version, expiring in an hour");
  await client.dashboards.publishDashboard({ id: board.id });
  const link = await client.shares.createPublicLink({ dashboardId: board.id, ttl: { seconds: 3600n } });
  say(`link ${link.id} expires at ${link.expireTime?.seconds}; its token is shown only now`);
  const links = await client.shares.listPublicLinks({ dashboardId: board.id });
  expect(links.links.some((l) => l.id === link.id && l.token === ""), "listed, without its token");
  const anonymous = createNodeClient({ address: a.address, token: linkToken(link.token) });
  const pub = await anonymous.dashboards.getDashboard({ id: board.id });
  const data = await anonymous.widgets.getWidgetData({ widgetId: widget.id });
  say(`through the link: ${JSON.stringify(pub.title)}, ${data.frame?.rowCount} rows, masked=${data.masked}`);
  expect(data.masked, "PHI is always masked through a link");
  await client.shares.revokePublicLink({ id: link.id });
  await refused("UNAUTHENTICATED", () => anonymous.dashboards.getDashboard({ id: board.id }));

  step("The audit trail of this dashboard (admins only)");
  const events = [];
  for await (const event of client.pages(client.shares.listAuditEvents, { resourceId: board.id, pageSize: 100 }, (r) => r.events)) {
    events.push(event);
  }
  for (const event of events.slice(0, 8)) {
    say(`${event.actor.padEnd(24)} ${event.method.split("/").pop()?.padEnd(20)} ${name(AuditOutcome, event.outcome)}`);
  }
  say(`... ${events.length} events in all`);
  expect(events.length > 0, "the dashboard's calls are in the audit log");

  if (!a.keep) {
    step("Clean up");
    await client.dashboards.deleteDashboard({ id: board.id });
    await client.queries.deleteQuery({ id: query.id });
    say("deleted the dashboard (with its shares and links) and the query");
  }
});
