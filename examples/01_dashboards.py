"""Usage example 1: creating and configuring a dashboard.

Creates a dashboard with tags, metadata, a grid layout and dashboard filters; updates it with a
field mask and its etag (and shows a stale write refused); shows invalid input answered with
field violations; publishes it for the whole facility; walks its version history and restores
an old version; finds it again by tag. Deletes it at the end unless --keep.

    export TESSERA_TOKEN=$(tessera token)        # against `tessera dev`
    python examples/01_dashboards.py
"""

from __future__ import annotations

from _common import ExampleFailed, arguments, connect, expect, explain, main, run_tag, say, step
from google.protobuf import struct_pb2

from dashboard.v1 import dashboard_pb2 as d
from tessera_client import AbortedError, InvalidArgumentError, parameter_value


def run() -> None:
    args = arguments(__doc__ or "")
    tag = run_tag()
    with connect(args) as client:
        step("Create a dashboard: tags, metadata, layout, filters")
        metadata = struct_pb2.Struct()
        metadata.update({"team": "ED operations", "review": {"weekly": True}})
        board = client.dashboards.create(
            title="Emergency department",
            description="Admissions and beds, refreshed every five minutes.",
            tags=["ed", "operations", tag],
            metadata=metadata,
            layout=d.GridLayout(row_height=90, gap=12),
            filters=[
                d.DashboardFilter(name="unit", label="Unit", default_value=parameter_value("Emergency")),
                d.DashboardFilter(name="min_age", label="Minimum age", default_value=parameter_value(18)),
            ],
        )
        say(f"created {board.id} in facility {board.facility_id}: version {board.version}, etag {board.etag}")
        say(f"grid of {board.layout.columns} columns, rows {board.layout.row_height} px")
        say(f"filters {[f.name for f in board.filters]}")
        expect(board.version == 1 and board.layout.columns == 12, "a new dashboard is version 1 on a 12-column grid")

        step("Rename it: only the fields in the mask change, and the etag guards the write")
        original = d.Dashboard()
        original.CopyFrom(board)
        board.title = "ED overview"
        board.description = "not in the mask, so not written"
        renamed = client.dashboards.update(board, ["title"])
        say(f"title {renamed.title!r}, description unchanged, now version {renamed.version}")
        expect(renamed.title == "ED overview" and renamed.description == original.description, "mask respected")

        step("A write based on a stale copy is refused (ABORTED), and nothing changes")
        try:
            client.dashboards.update(original, ["title"])
        except AbortedError as error:
            explain(error)
        else:
            raise ExampleFailed("a stale etag was accepted")

        step("Invalid input: every bad field is named")
        try:
            client.dashboards.create(title="x" * 201, tags=["Not A Tag"], layout=d.GridLayout(gap=500))
        except InvalidArgumentError as error:
            explain(error)
            expect(len(error.field_violations) >= 3, "title, tag and gap are all reported")
        else:
            raise ExampleFailed("invalid input was accepted")

        step("Make it public for the facility and publish the current version")
        renamed.visibility = d.VISIBILITY_PUBLIC
        public = client.dashboards.update(renamed, ["visibility"])
        published = client.dashboards.publish(public.id, etag=public.etag)
        say(f"published version {published.published_version} at {published.publish_time.ToJsonString()}")

        step("Version history (newest first), then restore version 1 as a new version")
        for version in client.dashboards.versions(board.id):
            reason = d.VersionReason.Name(version.reason).removeprefix("VERSION_REASON_").lower()
            mark = " (published)" if version.published else ""
            say(f"v{version.version} {reason} by {version.author_id}{mark}")
        restored = client.dashboards.restore(board.id, 1, etag=published.etag)
        say(f"restored: title {restored.title!r}, now version {restored.version}")
        expect(restored.title == "Emergency department" and restored.version == 4, "restore writes version 4")
        expect(restored.published_version == 3, "the published version stays what it was")

        step("Find it by tag")
        found = list(client.dashboards.list(tags=[tag]))
        say(f"{len(found)} dashboard(s) tagged {tag}: {[b.title for b in found]}")
        expect([b.id for b in found] == [board.id], "exactly this run's dashboard")

        if not args.keep:
            step("Clean up")
            client.dashboards.delete(board.id)
            say(f"deleted {board.id}")


if __name__ == "__main__":
    main(run)
