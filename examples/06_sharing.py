"""Usage example 6: sharing and permissions.

Shares a dashboard with a user and with a role (VIEW / EDIT / MANAGE), lists the shares, and,
given the viewer's token (--viewer-token or TESSERA_VIEWER_TOKEN; `tessera token --subject bob
--role viewer` in development), shows what that viewer may and may not do before and after the
share. Then creates an expiring public link, reads the published dashboard and its data through
it (PHI masked), revokes it, and reads the audit trail of the dashboard (admins only).
Deletes everything unless --keep.
"""

from __future__ import annotations

import os

from _common import ExampleFailed, arguments, connect, expect, explain, main, run_tag, say, step

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import share_pb2 as s
from dashboard.v1 import widget_pb2 as w
from tessera_client import (
    Client,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    rows,
)

VIEWER = "bob"


def run() -> None:
    def extra(parser: object) -> None:
        parser.add_argument(  # type: ignore[attr-defined]
            "--viewer-token",
            default=os.environ.get("TESSERA_VIEWER_TOKEN", ""),
            help=f"the JWT of the viewer {VIEWER!r} (TESSERA_VIEWER_TOKEN)",
        )

    args = arguments(__doc__ or "", extra)
    tag = run_tag()
    with connect(args) as client:
        step("A dashboard with a widget that reads PHI")
        query = client.queries.create(
            name="Latest admissions",
            tags=[tag],
            sql="SELECT patient_name, unit, age FROM demo.admissions ORDER BY admitted_at DESC, id LIMIT 5",
            sensitive_columns=[q.SensitiveColumn(column="patient_name", strategy=q.MASKING_STRATEGY_REDACT)],
        )
        board = client.dashboards.create(title="Ward handover", tags=[tag])
        widget = client.widgets.create(
            dashboard_id=board.id,
            title="Latest admissions",
            position=w.GridPosition(x=0, y=0, width=12, height=3),
            table=w.TableConfig(),
            query=w.QueryBinding(query_id=query.id),
        )
        say(f"dashboard {board.id} owned by {board.owner_id}, private")

        viewer = Client(args.address, token=args.viewer_token) if args.viewer_token else None
        if viewer is not None:
            step(f"Before sharing, {VIEWER} cannot even see it (NOT_FOUND, not PERMISSION_DENIED)")
            try:
                viewer.dashboards.get(board.id)
            except NotFoundError as error:
                explain(error)
            else:
                raise ExampleFailed("a private dashboard was visible before sharing")

        step(f"Share: VIEW with the user {VIEWER}, EDIT with every editor of the facility")
        client.shares.share(board.id, user_id=VIEWER, level=s.SHARE_LEVEL_VIEW)
        client.shares.share(board.id, role=s.ROLE_EDITOR, level=s.SHARE_LEVEL_EDIT)
        for share in client.shares.list(board.id):
            grantee = share.user_id if share.WhichOneof("grantee") == "user_id" else s.Role.Name(share.role)
            say(f"{grantee:<12} {s.ShareLevel.Name(share.level)} (granted by {share.granted_by})")

        if viewer is not None:
            step(f"Now {VIEWER} reads it, but a viewer never writes, whatever the share says")
            seen = viewer.dashboards.get(board.id)
            data = viewer.widgets.data(widget.id)
            say(f"{VIEWER} sees {seen.title!r}; first patient {rows(data.frame)[0]['patient_name']} (masked)")
            expect(data.masked, "PHI is masked for a viewer without phi:read")
            try:
                viewer.dashboards.update(d.Dashboard(id=board.id, title="Mine now"), ["title"])
            except PermissionDeniedError as error:
                explain(error)
            else:
                raise ExampleFailed("a viewer changed a dashboard")

            step(f"Unshare: {VIEWER} loses access")
            client.shares.unshare(board.id, user_id=VIEWER)
            try:
                viewer.dashboards.get(board.id)
            except NotFoundError:
                say(f"{VIEWER}: NOT_FOUND again")
            else:
                raise ExampleFailed("access survived the unshare")
            viewer.close()
        else:
            say("(set TESSERA_VIEWER_TOKEN to see the viewer's side)")

        step("A public link: read-only, to the published version, expiring in an hour")
        client.dashboards.publish(board.id)
        link = client.shares.create_link(board.id, ttl_seconds=3600)
        say(f"link {link.id} expires {link.expire_time.ToJsonString()}; its token is shown only now")
        with Client(args.address, link_token=link.token) as anonymous:
            public = anonymous.dashboards.get(board.id)
            data = anonymous.widgets.data(widget.id)
            say(f"through the link: {public.title!r}, {data.frame.row_count} rows, masked={data.masked}")
            expect(data.masked, "PHI is always masked through a link")
            client.shares.revoke_link(link.id)
            try:
                anonymous.dashboards.get(board.id)
            except UnauthenticatedError as error:
                explain(error)
            else:
                raise ExampleFailed("a revoked link still worked")

        step("The audit trail of this dashboard (admins only)")
        try:
            events = list(client.shares.audit_events(resource_id=board.id, page_size=100))
        except PermissionDeniedError as error:
            say(f"not an admin: {error.reason}")
        else:
            for event in events[:8]:
                outcome = s.AuditOutcome.Name(event.outcome).removeprefix("AUDIT_OUTCOME_")
                say(f"{event.time.ToJsonString()} {event.actor:<24} {event.method.rsplit('/', 1)[-1]:<20} {outcome}")
            say(f"... {len(events)} events in all")

        if not args.keep:
            step("Clean up")
            client.dashboards.delete(board.id)
            client.queries.delete(query.id)
            say("deleted the dashboard (with its shares and links) and the query")


if __name__ == "__main__":
    main(run)
