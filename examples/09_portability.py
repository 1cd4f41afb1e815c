"""Usage example 9: dashboard portability.

Builds a small dashboard (a parameterised query bound to a dashboard filter, a cross-filter, a
drill-through to the dashboard itself), exports it as a portable JSON document (written to
--out or a temporary file), checks an import with validate_only, shows an import with conflicts
refused with every problem by field and nothing created, shows that a title already taken in the
facility is refused unless the request renames (or keeps) it, imports it for real and exports the
copy again (the same document but the title), then clones the dashboard, and two dashboards in
one all-or-nothing batch (a duplicate refused first). Given the viewer's token
(TESSERA_VIEWER_TOKEN), shows that a viewer cannot import. Deletes everything unless --keep.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from _common import ExampleFailed, arguments, connect, expect, explain, main, run_tag, say, step
from google.protobuf import json_format

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from tessera_client import Client, InvalidArgumentError, PermissionDeniedError, parameter_value


def run() -> None:
    def extra(parser: object) -> None:
        parser.add_argument("--out", default="", help="where to write the document (default: a temporary file)")  # type: ignore[attr-defined]
        parser.add_argument(  # type: ignore[attr-defined]
            "--viewer-token", default=os.environ.get("TESSERA_VIEWER_TOKEN", ""), help="a viewer's JWT"
        )

    args = arguments(__doc__ or "", extra)
    tag = run_tag()
    made_boards: list[str] = []
    made_queries: set[str] = set()
    with connect(args) as client:
        step("A dashboard: a filter, a parameterised query, a cross-filter, a drill-through to itself")
        query = client.queries.create(
            name="Admissions by unit",
            tags=[tag],
            sql="SELECT unit, count(*) AS admissions FROM demo.admissions WHERE age >= :min_age GROUP BY unit",
            parameters=[q.ParameterSpec(name="min_age", type=q.PARAMETER_TYPE_INT, default_value=parameter_value(0))],
        )
        made_queries.add(query.id)
        board = client.dashboards.create(
            title="Admissions",
            tags=[tag],
            filters=[d.DashboardFilter(name="min_age", label="Minimum age", default_value=parameter_value(18))],
        )
        made_boards.append(board.id)
        client.widgets.create(
            dashboard_id=board.id,
            title="By unit",
            position=w.GridPosition(x=0, y=0, width=6, height=3),
            bar=w.BarChartConfig(category_column="unit", value_columns=["admissions"]),
            query=w.QueryBinding(query_id=query.id, filter_bindings={"min_age": "min_age"}),
            cross_filters=[w.CrossFilter(source_column="admissions", filter_name="min_age")],
        )
        client.widgets.create(
            dashboard_id=board.id,
            title="Table",
            position=w.GridPosition(x=6, y=0, width=6, height=3),
            table=w.TableConfig(),
            query=w.QueryBinding(query_id=query.id, parameter_values={"min_age": parameter_value(65)}),
            drill_through=w.DrillThrough(target_dashboard_id=board.id, column_to_filter={"admissions": "min_age"}),
        )
        say(f"dashboard {board.id}")

        step("Export it as a document: keys instead of database ids")
        document = client.dashboards.export_document(board.id)
        path = Path(args.out) if args.out else Path(tempfile.mkdtemp()) / "admissions.json"
        path.write_text(json_format.MessageToJson(document, indent=2) + "\n", encoding="utf-8")
        text = path.read_text(encoding="utf-8")
        say(f"{path}: {len(text)} bytes, schema {document.schema_version}")
        say(f"widgets {[x.key for x in document.widgets]} use queries {[x.query_key for x in document.widgets]}")
        expect(board.id not in text and query.id not in text, "the document names no database id")
        expect(document.widgets[1].drill_through.to_this_dashboard, "the drill-through is a document-local reference")

        step("validate_only: what an import would do, changing nothing")
        checked = client.dashboards.import_document(
            document,
            validate_only=True,
            query_mode=d.QUERY_IMPORT_MODE_REUSE_IDENTICAL,
            title_conflict=d.TITLE_CONFLICT_POLICY_RENAME,
        )
        for found in checked.queries:
            say(f"{found.key}: {d.QueryImportAction.Name(found.action)} {found.query_id}")
        say(f"the new dashboard would be titled {checked.title!r}")
        expect(checked.validate_only and not checked.dashboard.id, "validate_only created something")

        step("A document with conflicts: every one reported by field, nothing created")
        broken = json_format.Parse(text, d.DashboardDocument())
        broken.schema_version = "tessera.dashboard/v0"
        broken.widgets[0].query_key = "q9"
        broken.widgets[1].widget.position.x = 2  # now overlaps the first
        before = len(list(client.dashboards.list(tags=[tag])))
        try:
            client.dashboards.import_document(broken)
        except InvalidArgumentError as error:
            explain(error)
            expect(len(error.field_violations) >= 3, "every conflict is reported")
        else:
            raise ExampleFailed("a document with conflicts was imported")
        expect(len(list(client.dashboards.list(tags=[tag]))) == before, "a refused import changed something")

        step("A title the facility already has: refused by field, unless renamed or kept")
        try:
            client.dashboards.import_document(document)
        except InvalidArgumentError as error:
            explain(error)
            expect(error.fields == ["document.dashboard.title"], "only the title is in the way")
        else:
            raise ExampleFailed("a second 'Admissions' was imported without asking")

        step("Import it for real (renamed), then export the copy: the same document but the title")
        imported = client.dashboards.import_document(
            json_format.Parse(text, d.DashboardDocument()), title_conflict=d.TITLE_CONFLICT_POLICY_RENAME
        )
        made_boards.append(imported.dashboard.id)
        made_queries.update(found.query_id for found in imported.queries)
        say(f"new dashboard {imported.dashboard.id} {imported.title!r} with {len(imported.dashboard.widgets)} widgets")
        again = client.dashboards.export_document(imported.dashboard.id)
        expect(again.dashboard.title == imported.title == checked.title, "the rename is the one validate_only said")
        again.dashboard.title = document.dashboard.title
        expect(again == document, "the round trip changed it")

        step("Clone it within the facility: the copy reads the same queries")
        clone = client.dashboards.clone(board.id, title="Admissions (copy)")
        made_boards.append(clone.dashboard.id)
        say(f"clone {clone.dashboard.id}: {[d.QueryImportAction.Name(x.action) for x in clone.queries]}")
        expect(clone.queries[0].query_id == query.id, "a clone in the same facility reuses the queries")

        step("Clone several at once (BatchCloneDashboards): all copies or none")
        tagged = len(list(client.dashboards.list(tags=[tag])))
        try:
            client.dashboards.clone_many([board.id, board.id], title_conflict=d.TITLE_CONFLICT_POLICY_RENAME)
        except InvalidArgumentError as error:
            explain(error)
            expect(error.fields == ["requests[1].id"], "the same dashboard twice into one facility is refused")
        else:
            raise ExampleFailed("one dashboard was copied twice into the same facility")
        expect(len(list(client.dashboards.list(tags=[tag]))) == tagged, "a refused batch changed something")
        copies = client.dashboards.clone_many(
            [board.id, imported.dashboard.id], title_conflict=d.TITLE_CONFLICT_POLICY_RENAME
        )
        made_boards.extend(copy.dashboard.id for copy in copies)
        say(f"copies {[copy.title for copy in copies]}")
        drills = [
            x.drill_through.target_dashboard_id for x in copies[0].dashboard.widgets if x.HasField("drill_through")
        ]
        expect(drills == [copies[0].dashboard.id], "a copy's drill-through to itself opens the copy")

        if args.viewer_token:
            step("A viewer cannot import or clone")
            with Client(args.address, token=args.viewer_token) as viewer:
                try:
                    viewer.dashboards.import_document(document)
                except PermissionDeniedError as error:
                    explain(error)
                else:
                    raise ExampleFailed("a viewer imported a dashboard")

        if not args.keep:
            step("Clean up")
            for board_id in made_boards:
                client.dashboards.delete(board_id)
            for query_id in made_queries:
                client.queries.delete(query_id)
            say(f"deleted {len(made_boards)} dashboards and {len(made_queries)} queries")


if __name__ == "__main__":
    main(run)
