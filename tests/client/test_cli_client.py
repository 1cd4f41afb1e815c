"""`tessera dashboards|widgets|materialize` against the real server, through typer's CliRunner
(the same entry point as the console script): tables, JSON, errors people can act on, value
parsing, and the materialize progress bar fed by the watch stream (a real worker)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import query_pb2 as q
from dashboard.v1 import widget_pb2 as w
from server.cli import app
from server.devtools.cli_client import parse_value
from tessera_client import Client, parameter_value
from tests.client.conftest import JobStack, Mint
from tests.harness.server import ServerHandle

Invoke = Callable[..., Result]


def invoker(address: str, token: str) -> Invoke:
    runner = CliRunner()

    def invoke(*args: str, token_: str | None = token) -> Result:
        env = {"TESSERA_ADDRESS": address, "COLUMNS": "200", "TESSERA_TOKEN": token_ or "", "TESSERA_LINK_TOKEN": ""}
        return runner.invoke(app, list(args), env=env)

    return invoke


@pytest.fixture
def token(mint: Mint, facility: str) -> str:
    return mint("cli", "editor", facility)


@pytest.fixture
def cli(server: ServerHandle, token: str) -> Invoke:
    return invoker(server.address, token)


def make_board(client: Client, facility: str, tag: str) -> tuple[str, str]:
    board = client.dashboards.create(title="Wards today", tags=[tag], facility_id=facility)
    query = client.queries.create(
        name="doubled",
        facility_id=facility,
        sql="SELECT :n * 2 AS doubled, 'ward' AS label",
        parameters=[q.ParameterSpec(name="n", type=q.PARAMETER_TYPE_INT, default_value=parameter_value(1))],
    )
    widget = client.widgets.create(
        dashboard_id=board.id,
        title="Doubled",
        position=w.GridPosition(x=0, y=0, width=4, height=2),
        table=w.TableConfig(),
        query=w.QueryBinding(query_id=query.id),
    )
    return board.id, widget.id


def test_parse_value_reads_json_dates_ranges_and_text() -> None:
    assert parse_value("65") == 65 and parse_value("2.5") == 2.5 and parse_value("true") is True
    assert parse_value('["ICU","ER"]') == ["ICU", "ER"] and parse_value('"65"') == "65"
    assert parse_value("ICU") == "ICU" and parse_value("North General") == "North General"
    assert parse_value("2026-01-31") == dt.date(2026, 1, 31)
    span = parse_value("2026-01-01..2026-01-31")
    assert span.date_range_value.end.day == 31  # type: ignore[union-attr]
    assert parse_value("2026-01-31T08:00:00+00:00") == dt.datetime(2026, 1, 31, 8, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="needs a zone"):
        parse_value("2026-01-31T08:00:00")
    with pytest.raises(ValueError, match="objects and null"):
        parse_value('{"a": 1}')


def test_dashboards_list_and_get(cli: Invoke, token: str, server: ServerHandle, facility: str) -> None:
    tag = f"t{uuid.uuid4().hex[:8]}"
    with Client(server.address, token=token) as client:
        board_id, widget_id = make_board(client, facility, tag)
    listed = cli("dashboards", "list", "--tag", tag)
    assert listed.exit_code == 0, listed.output
    assert "Wards today" in listed.stdout and board_id in listed.stdout and "1 dashboard(s)" in listed.stdout
    as_json = json.loads(cli("dashboards", "list", "--tag", tag, "--json").stdout)
    assert [item["id"] for item in as_json] == [board_id]
    shown = cli("dashboards", "get", board_id)
    assert shown.exit_code == 0, shown.output
    assert "Wards today" in shown.stdout and widget_id in shown.stdout and "table" in shown.stdout
    assert json.loads(cli("dashboards", "get", board_id, "--json").stdout)["widgets"][0]["id"] == widget_id


def test_widget_data_as_a_table_then_from_the_cache(
    cli: Invoke, token: str, server: ServerHandle, facility: str
) -> None:
    with Client(server.address, token=token) as client:
        _, widget_id = make_board(client, facility, "cli")
    first = cli("widgets", "data", widget_id, "--param", "n=21")
    assert first.exit_code == 0, first.output
    assert "doubled" in first.stdout and "42" in first.stdout and "source computed" in first.stdout
    second = cli("widgets", "data", widget_id, "--param", "n=21")
    assert "source memory" in second.stdout
    document = json.loads(cli("widgets", "data", widget_id, "--param", "n=21", "--refresh", "--json").stdout)
    assert document["source"] == "computed" and document["rows"] == [{"doubled": 42, "label": "ward"}]


def test_dashboard_documents_export_import_and_clone(
    cli: Invoke, token: str, server: ServerHandle, facility: str, tmp_path: Path
) -> None:
    with Client(server.address, token=token) as client:
        board_id, _ = make_board(client, facility, "doc")
    path = tmp_path / "board.json"
    exported = cli("dashboards", "export-doc", board_id, "--out", str(path))
    assert exported.exit_code == 0, exported.output
    document = json.loads(path.read_text())
    assert document["schemaVersion"] == "tessera.dashboard/v1" and document["widgets"][0]["queryKey"] == "q1"
    assert json.loads(cli("dashboards", "export-doc", board_id).stdout) == document  # stdout: the same
    taken = cli("dashboards", "import", str(path), "--validate-only")  # the source has that title
    assert taken.exit_code == 1 and "document.dashboard.title: facility" in taken.stderr and "RENAME" in taken.stderr
    checked = cli("dashboards", "import", str(path), "--validate-only", "--on-title-conflict", "rename")
    assert checked.exit_code == 0, checked.output
    assert "valid" in checked.stdout and "CREATED" in checked.stdout and "(new)" in checked.stdout
    assert f"(title: {document['dashboard']['title']} (2))" in checked.stdout
    made = json.loads(
        cli("dashboards", "import", str(path), "--reuse-identical", "--title", "Imported", "--json").stdout
    )
    assert made["dashboard"]["title"] == "Imported" and made["queries"][0]["action"] == "QUERY_IMPORT_ACTION_REUSED"
    cloned = cli("dashboards", "clone", board_id, "--title", "Cloned")
    assert cloned.exit_code == 0, cloned.output
    assert "Cloned" in cloned.stdout and "1 widget(s)" in cloned.stdout and "MAPPED" in cloned.stdout
    again = cli("dashboards", "clone", board_id, "--title", "cloned ", "--on-title-conflict", "rename", "--json")
    assert json.loads(again.stdout)["title"] == "cloned (2)"
    stray = str(uuid.uuid4())
    unmapped = cli("dashboards", "clone", board_id, "--title", "Third", "--map-dashboard", f"{stray}={stray}")
    assert unmapped.exit_code == 1 and f'dashboard_mappings["{stray}"]:' in unmapped.stderr
    bad_map = cli("dashboards", "clone", board_id, "--map-dashboard", "nothing")
    assert bad_map.exit_code == 2 and "is not SOURCE_ID=TARGET_ID" in bad_map.output
    # Conflicts: every one by field, exit 1, nothing imported.
    document["schemaVersion"] = "tessera.dashboard/v0"
    document["widgets"][0]["queryKey"] = "q7"
    path.write_text(json.dumps(document))
    refused = cli("dashboards", "import", str(path))
    assert refused.exit_code == 1, refused.output
    assert "document.schema_version:" in refused.stderr and "document.widgets[0].query_key:" in refused.stderr
    not_json = cli("dashboards", "import", str(path), "--map", "q1")
    assert not_json.exit_code == 2 and "is not QUERY_KEY=QUERY_ID" in not_json.output


def test_clone_takes_several_dashboards_and_copies_them_together(
    cli: Invoke, token: str, server: ServerHandle, facility: str
) -> None:
    with Client(server.address, token=token) as client:
        first, _ = make_board(client, facility, "batch")
        second = client.dashboards.create(title="Wards tonight", facility_id=facility).id
        # The client method, keyed by a request_id: a retry returns the same copies.
        request_id = str(uuid.uuid4())
        made = client.dashboards.clone_many(
            [first, second], title_conflict=d.TITLE_CONFLICT_POLICY_RENAME, request_id=request_id
        )
        assert [c.title for c in made] == ["Wards today (2)", "Wards tonight (2)"]
        again = client.dashboards.clone_many(
            [first, second], title_conflict=d.TITLE_CONFLICT_POLICY_RENAME, request_id=request_id
        )
        assert [c.dashboard.id for c in again] == [c.dashboard.id for c in made]
    both = cli("dashboards", "clone", first, second, "--on-title-conflict", "rename", "--json")
    assert both.exit_code == 0, both.output
    assert [c["title"] for c in json.loads(both.stdout)["clones"]] == ["Wards today (3)", "Wards tonight (3)"]
    shown = cli("dashboards", "clone", first, second, "--on-title-conflict", "rename")
    assert shown.exit_code == 0 and "Wards today (4)" in shown.stdout and "Wards tonight (4)" in shown.stdout
    twice = cli("dashboards", "clone", first, first, "--on-title-conflict", "rename")
    assert twice.exit_code == 1 and "requests[1].id: requests[0] already copies" in twice.stderr
    titled = cli("dashboards", "clone", first, second, "--title", "One")
    assert titled.exit_code == 2 and "one ID" in titled.output


def test_errors_are_reported_with_reason_fields_and_exit_codes(cli: Invoke, facility: str) -> None:
    missing = cli("dashboards", "get", str(uuid.uuid4()))
    assert missing.exit_code == 1
    assert "NOT_FOUND" in missing.stderr and "reason: DASHBOARD_NOT_FOUND" in missing.stderr
    assert "correlation id:" in missing.stderr
    invalid = cli("dashboards", "get", "not-a-uuid")
    assert invalid.exit_code == 1 and "INVALID_ARGUMENT" in invalid.stderr and "  id: " in invalid.stderr
    bad_pair = cli("widgets", "data", str(uuid.uuid4()), "--param", "novalue")
    assert bad_pair.exit_code == 2 and "is not NAME=VALUE" in bad_pair.output
    bad_value = cli("widgets", "data", str(uuid.uuid4()), "--filter", "day=2026-01-01T00:00:00")
    assert bad_value.exit_code == 2 and "needs a zone" in bad_value.output
    anonymous = cli("dashboards", "list", token_=None)
    assert anonymous.exit_code == 2 and "no credentials" in anonymous.output
    wrong = cli("export", str(uuid.uuid4()), "--paper", "a5")
    assert wrong.exit_code == 2 and "a5" in wrong.output


def test_materialize_shows_progress_and_a_summary(job_stack: JobStack, mint: Mint, facility: str) -> None:
    token = mint("cli", "editor", facility)
    with Client(job_stack.address, token=token) as client:
        board_id, widget_id = make_board(client, facility, "cli")
    cli = invoker(job_stack.address, token)
    done = cli("materialize", board_id)
    assert done.exit_code == 0, done.output
    assert "SUCCEEDED" in done.stdout and widget_id in done.stdout
    assert "100%" in done.stderr and "materializing" in done.stderr, done.stderr
    queued = cli("materialize", board_id, "--no-wait")
    assert queued.exit_code == 0 and "QUEUED" in queued.stdout
