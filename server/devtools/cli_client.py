"""Client commands of `tessera`, for daily use against a running server.

    tessera dashboards list [--tag T]... [--mine] [--title TEXT] [--published/--unpublished]
                            [--favorites-first] [--json]
    tessera dashboards get ID [--json]
    tessera dashboards export-doc ID [--out FILE]                  (the portable JSON document)
    tessera dashboards import FILE|- [--facility F] [--validate-only] [--reuse-identical]
                              [--map QUERY_KEY=QUERY_ID]... [--title T] [--json]
    tessera dashboards clone ID [ID...] [--to-facility F] [--title T] [--reuse-identical] [--json]
                             (several IDs: one all-or-nothing BatchCloneDashboards)
    tessera widgets data WIDGET_ID [--param NAME=VALUE]... [--filter NAME=VALUE]... [--refresh] [--json]
    tessera materialize DASHBOARD_ID [--filter NAME=VALUE]... [--version N] [--no-wait]
    tessera export DASHBOARD_ID [--format pdf|png|csv|xlsx] [--widget WIDGET_ID] [--paper a4]
                   [--orientation landscape] [--out PATH] ...
    tessera export --query QUERY_ID --format csv|xlsx [--param NAME=VALUE]... [--query-version N]

Every command takes --address (TESSERA_ADDRESS, default 127.0.0.1:50051) and --token
(TESSERA_TOKEN; `tessera token` mints one in development) or --link-token (TESSERA_LINK_TOKEN),
and for TLS --ca-file (TESSERA_CA_FILE) and, when the server requires client certificates,
--cert-file/--key-file (TESSERA_CLIENT_CERT_FILE, TESSERA_CLIENT_KEY_FILE).
Materialize and export show a live progress bar fed by the job's watch stream. A failed call
prints its status, reason, field violations and correlation id, and exits 1.

Values of --param and --filter are read as JSON when they parse (65, 2.5, true, ["ICU","ER"],
"65" for the text 65), as a date (2026-01-31), a date range (2026-01-01..2026-01-31) or an
ISO timestamp with a zone (2026-01-31T08:00:00+00:00), and as plain text otherwise.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from google.protobuf import json_format
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from dashboard.v1 import common_pb2 as c
from dashboard.v1 import dashboard_pb2 as d
from dashboard.v1 import export_pb2 as e
from dashboard.v1 import widget_pb2 as w
from tessera_client import (
    DEFAULT_ADDRESS,
    ApiError,
    Client,
    DownloadVerificationError,
    JobFailedError,
    date_range,
    rows,
    table,
)
from tessera_client.tls import TlsFileError, tls_credentials
from tessera_client.values import ParameterInput

__all__ = ["mount_client_commands", "parse_value"]

P = ParamSpec("P")
R = TypeVar("R")

Address = Annotated[
    str,
    typer.Option(
        "--address",
        envvar="TESSERA_ADDRESS",
        help="Server host:port, or several comma-separated for client-side round robin (TESSERA_ADDRESS).",
    ),
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="TESSERA_TOKEN", help="Bearer JWT (TESSERA_TOKEN).", show_default=False),
]
LinkToken = Annotated[
    str | None,
    typer.Option("--link-token", envvar="TESSERA_LINK_TOKEN", help="A public link token instead of a JWT."),
]
CaFile = Annotated[
    Path | None,
    typer.Option(
        "--ca-file", envvar="TESSERA_CA_FILE", help="PEM CA of the server's certificate: TLS.", show_default=False
    ),
]
CertFile = Annotated[
    Path | None,
    typer.Option(
        "--cert-file", envvar="TESSERA_CLIENT_CERT_FILE", help="PEM client certificate (mTLS).", show_default=False
    ),
]
KeyFile = Annotated[
    Path | None,
    typer.Option("--key-file", envvar="TESSERA_CLIENT_KEY_FILE", help="PEM client key (mTLS).", show_default=False),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Filters = Annotated[
    list[str] | None, typer.Option("--filter", help="Dashboard filter NAME=VALUE; repeatable.", show_default=False)
]

dashboards_app = typer.Typer(no_args_is_help=True, help="List and read dashboards.")
widgets_app = typer.Typer(no_args_is_help=True, help="Read widget data.")


def mount_client_commands(app: typer.Typer) -> None:
    app.add_typer(dashboards_app, name="dashboards")
    app.add_typer(widgets_app, name="widgets")
    app.command("materialize")(materialize)
    app.command("export")(export)


# --- plumbing --------------------------------------------------------------------------------


def _client(
    address: str,
    token: str | None,
    link_token: str | None,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> Client:
    if not token and not link_token:
        raise typer.BadParameter(
            "no credentials: pass --token or set TESSERA_TOKEN (`tessera token` mints one in development)",
            param_hint="--token",
        )
    credentials = None
    if ca_file or cert_file or key_file:
        try:
            credentials = tls_credentials(ca_file=ca_file, cert_file=cert_file, key_file=key_file)
        except TlsFileError as error:
            raise typer.BadParameter(str(error), param_hint="--ca-file/--cert-file/--key-file") from None
    return Client(address, token=token or None, link_token=None if token else link_token, credentials=credentials)


def _reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Prints what went wrong, the way a person can act on it, and exits 1."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        err = Console(stderr=True)
        try:
            return command(*args, **kwargs)
        except ApiError as error:
            err.print(f"[bold red]error[/]: {error.code().name}: {error.message}", highlight=False)
            if error.reason:
                err.print(f"  reason: {error.reason}", highlight=False)
            for field, description in error.field_violations:
                err.print(f"  {field}: {description}", highlight=False)
            if error.correlation_id:
                err.print(f"  correlation id: {error.correlation_id}", highlight=False)
            raise typer.Exit(1) from None
        except (JobFailedError, DownloadVerificationError) as error:
            err.print(f"[bold red]error[/]: {error}", highlight=False)
            raise typer.Exit(1) from None

    return run


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_value(text: str) -> ParameterInput:
    """A --param / --filter value: see the module docstring."""
    if ".." in text:
        start, _, end = text.partition("..")
        if _DATE.match(start) and _DATE.match(end):
            return date_range(dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    if _DATE.match(text):
        return dt.date.fromisoformat(text)
    if "T" in text and text[:4].isdigit():
        try:
            stamp = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if stamp.tzinfo is None:
                raise ValueError(f"{text!r}: a timestamp needs a zone (for example +00:00)")
            return stamp
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if isinstance(value, dict) or value is None:
        raise ValueError(f"{text!r}: objects and null are not parameter values")
    return value  # type: ignore[no-any-return]


def _pairs(items: Sequence[str] | None, option: str) -> dict[str, ParameterInput]:
    values: dict[str, ParameterInput] = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=option)
        try:
            values[name.strip()] = parse_value(text)
        except ValueError as error:
            raise typer.BadParameter(f"{name}: {error}", param_hint=option) from None
    return values


def _when(stamp: Any) -> str:
    if not stamp.seconds and not stamp.nanos:
        return ""
    return str(stamp.ToDatetime(tzinfo=dt.UTC).isoformat(timespec="seconds"))


def _state(state: int) -> str:
    return str(c.JobState.Name(state)).removeprefix("JOB_STATE_")


def _print_json(message: Any) -> None:
    typer.echo(json_format.MessageToJson(message, indent=2))


# --- dashboards ------------------------------------------------------------------------------


@dashboards_app.command("list")
@_reports_errors
def list_dashboards(
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    link_token: LinkToken = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only with this tag; repeatable.")] = None,
    mine: Annotated[bool, typer.Option("--mine", help="Only dashboards I own.")] = False,
    title: Annotated[str, typer.Option(help="Title contains (case-insensitive).")] = "",
    published: Annotated[bool | None, typer.Option("--published/--unpublished", show_default=False)] = None,
    limit: Annotated[int, typer.Option(help="At most this many (0: all).")] = 0,
    favorites_first: Annotated[bool, typer.Option("--favorites-first", help="Your favorites first.")] = False,
    as_json: AsJson = False,
) -> None:
    """List the dashboards you may see, newest change first."""
    with _client(address, token, link_token, ca_file, cert_file, key_file) as client:
        found: list[d.Dashboard] = []
        for board in client.dashboards.list(
            tags=tag or (),
            owner_id="me" if mine else "",
            published=published,
            title_contains=title,
            favorites_first=favorites_first,
        ):
            found.append(board)
            if limit and len(found) >= limit:
                break
    if as_json:
        typer.echo(json.dumps([json.loads(json_format.MessageToJson(b)) for b in found], indent=2))
        return
    grid = Table(title=f"{len(found)} dashboard(s)")
    for name in ("id", "title", "tags", "version", "published", "updated"):
        grid.add_column(name, no_wrap=name == "id", overflow="fold")
    for board in found:
        grid.add_row(
            board.id,
            board.title,
            ", ".join(board.tags),
            str(board.version),
            str(board.published_version or "-"),
            _when(board.update_time),
        )
    Console().print(grid)


@dashboards_app.command("get")
@_reports_errors
def get_dashboard(
    dashboard_id: Annotated[str, typer.Argument(help="Dashboard UUID.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    link_token: LinkToken = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Show a dashboard and its widgets."""
    with _client(address, token, link_token, ca_file, cert_file, key_file) as client:
        board = client.dashboards.get(dashboard_id)
    if as_json:
        _print_json(board)
        return
    out = Console()
    out.print(f"[bold]{board.title}[/]  ({board.id})", highlight=False)
    out.print(
        f"facility {board.facility_id} · owner {board.owner_id} · version {board.version} · "
        f"published {board.published_version or '-'} · tags {', '.join(board.tags) or '-'}",
        highlight=False,
    )
    if board.description:
        out.print(board.description, highlight=False)
    grid = Table(title=f"{len(board.widgets)} widget(s)")
    for name in ("id", "title", "type", "x,y wxh", "query"):
        grid.add_column(name, no_wrap=name == "id", overflow="fold")
    for widget in board.widgets:
        p = widget.position
        grid.add_row(
            widget.id,
            widget.title,
            str(w.WidgetType.Name(widget.type)).removeprefix("WIDGET_TYPE_").lower(),
            f"{p.x},{p.y} {p.width}x{p.height}",
            widget.query.query_id or "-",
        )
    out.print(grid)


# --- widget data -----------------------------------------------------------------------------


# --- dashboard documents: export, import, clone ------------------------------------------------

ReuseIdentical = Annotated[
    bool,
    typer.Option(
        "--reuse-identical",
        help="Use an identical existing query of the facility instead of creating one.",
    ),
]
Facility = Annotated[str, typer.Option("--facility", help="Target facility (may be left out with one).")]


class OnTitleConflict(StrEnum):
    refuse = "refuse"
    rename = "rename"
    keep = "keep"


TitleConflict = Annotated[
    OnTitleConflict,
    typer.Option(
        "--on-title-conflict",
        help="When the title is taken in the facility: refuse, rename (adds ' (2)', ...) or keep.",
    ),
]
DashboardMappings = Annotated[
    list[str] | None,
    typer.Option(
        "--map-dashboard",
        help="SOURCE_ID=TARGET_ID: a drill-through to SOURCE_ID opens TARGET_ID instead; repeatable.",
        show_default=False,
    ),
]


def _id_pairs(items: Sequence[str] | None, option: str, form: str) -> dict[str, str]:
    """KEY=ID options (repeatable) as a mapping."""
    found: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise typer.BadParameter(f"{item!r} is not {form}", param_hint=option)
        found[key.strip()] = value.strip()
    return found


def _placement(
    reuse_identical: bool, on_title_conflict: OnTitleConflict, map_dashboard: Sequence[str] | None
) -> dict[str, Any]:
    """The options import and clone share, as the client's keyword arguments."""
    return {
        "query_mode": d.QUERY_IMPORT_MODE_REUSE_IDENTICAL if reuse_identical else d.QUERY_IMPORT_MODE_CREATE,
        "title_conflict": d.TitleConflictPolicy.Value(f"TITLE_CONFLICT_POLICY_{on_title_conflict.upper()}"),
        "dashboard_mappings": _id_pairs(map_dashboard, "--map-dashboard", "SOURCE_ID=TARGET_ID"),
    }


def _print_import(answer: d.ImportDashboardResponse, as_json: bool) -> None:
    if as_json:
        _print_json(answer)
        return
    out = Console()
    if answer.validate_only:
        out.print(f"[bold green]valid[/]: nothing was changed (title: {answer.title})", highlight=False)
    else:
        board = answer.dashboard
        out.print(
            f"[bold]{board.title}[/]  ({board.id}) in {board.facility_id}: {len(board.widgets)} widget(s)",
            highlight=False,
        )
    grid = Table(title=f"{len(answer.queries)} quer(ies)")
    for name in ("key", "action", "query id"):
        grid.add_column(name, overflow="fold")
    for query in answer.queries:
        action = str(d.QueryImportAction.Name(query.action)).removeprefix("QUERY_IMPORT_ACTION_")
        grid.add_row(query.key, action, query.query_id or "(new)")
    out.print(grid)


@dashboards_app.command("export-doc")
@_reports_errors
def export_document(
    dashboard_id: Annotated[str, typer.Argument(help="Dashboard UUID.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    link_token: LinkToken = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print a dashboard's portable JSON document (widgets, filters, layout, queries; no data)."""
    with _client(address, token, link_token, ca_file, cert_file, key_file) as client:
        document = client.dashboards.export_document(dashboard_id)
    text = json_format.MessageToJson(document, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")


@dashboards_app.command("import")
@_reports_errors
def import_document(
    file: Annotated[str, typer.Argument(help="A document from export-doc; - reads stdin.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    link_token: LinkToken = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    facility: Facility = "",
    validate_only: Annotated[bool, typer.Option("--validate-only", help="Check only; change nothing.")] = False,
    reuse_identical: ReuseIdentical = False,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="QUERY_KEY=QUERY_ID: use an existing query; repeatable.", show_default=False),
    ] = None,
    title: Annotated[str, typer.Option(help="Title of the new dashboard instead of the document's.")] = "",
    on_title_conflict: TitleConflict = OnTitleConflict.refuse,
    map_dashboard: DashboardMappings = None,
    as_json: AsJson = False,
) -> None:
    """Import a dashboard document into a facility: all of it, or (on any conflict) nothing."""
    text = typer.get_text_stream("stdin").read() if file == "-" else Path(file).read_text(encoding="utf-8")
    try:
        document = json_format.Parse(text, d.DashboardDocument())
    except json_format.ParseError as error:
        raise typer.BadParameter(f"not a dashboard document: {error}", param_hint="FILE") from None
    with _client(address, token, link_token, ca_file, cert_file, key_file) as client:
        answer = client.dashboards.import_document(
            document,
            facility_id=facility,
            validate_only=validate_only,
            query_mappings=_id_pairs(mapping, "--map", "QUERY_KEY=QUERY_ID"),
            title=title,
            **_placement(reuse_identical, on_title_conflict, map_dashboard),
        )
    _print_import(answer, as_json)


@dashboards_app.command("clone")
@_reports_errors
def clone_dashboard(
    dashboard_ids: Annotated[list[str], typer.Argument(help="Dashboard UUIDs: one, or several copied together.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    link_token: LinkToken = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    facility: Annotated[
        str, typer.Option("--to-facility", "--facility", help="Target facility (default: each source's own).")
    ] = "",
    title: Annotated[str, typer.Option(help="Title of the copy (default: the source's); one ID only.")] = "",
    reuse_identical: ReuseIdentical = False,
    on_title_conflict: TitleConflict = OnTitleConflict.refuse,
    map_dashboard: DashboardMappings = None,
    as_json: AsJson = False,
) -> None:
    """Copy dashboards within their facility (a new --title, or --on-title-conflict rename), or into
    another facility you administer. Several IDs are copied in one call, all or nothing, and a
    drill-through between two of them opens the other's copy."""
    placement = _placement(reuse_identical, on_title_conflict, map_dashboard)
    if len(dashboard_ids) > 1 and title:
        raise typer.BadParameter("a title names one copy: give one ID, or none with several", param_hint="--title")
    with _client(address, token, link_token, ca_file, cert_file, key_file) as client:
        if len(dashboard_ids) == 1:
            answer = client.dashboards.clone(dashboard_ids[0], facility_id=facility, title=title, **placement)
            _print_import(answer, as_json)
            return
        clones = client.dashboards.clone_many(dashboard_ids, facility_id=facility, **placement)
    if as_json:
        _print_json(d.BatchCloneDashboardsResponse(clones=clones))
        return
    for answer in clones:
        _print_import(answer, as_json=False)


@widgets_app.command("data")
@_reports_errors
def widget_data(
    widget_id: Annotated[str, typer.Argument(help="Widget UUID.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    link_token: LinkToken = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Query parameter NAME=VALUE; repeatable.", show_default=False)
    ] = None,
    filter_: Filters = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Skip the cache and compute.")] = False,
    max_rows: Annotated[int, typer.Option(help="Show at most this many rows (0: all).")] = 50,
    as_json: AsJson = False,
) -> None:
    """Show a widget's data as a table, with where it came from (cache tier or computed)."""
    parameters, filters = _pairs(param, "--param"), _pairs(filter_, "--filter")
    with _client(address, token, link_token, ca_file, cert_file, key_file) as client:
        data = client.widgets.data(widget_id, parameters=parameters, filters=filters, force_refresh=refresh)
        # Values are shown as the widget's formats say, timestamps in its dashboard's zone.
        widget = client.widgets.get(widget_id)
        zone = client.dashboards.get(widget.dashboard_id).layout.time_zone
    source = str(w.DataSource.Name(data.source)).removeprefix("DATA_SOURCE_").lower()
    if as_json:
        document = {
            "widget_id": data.widget_id,
            "source": source,
            "compute_time": _when(data.compute_time),
            "masked": data.masked,
            "truncated": data.frame.truncated,
            "rows": rows(data.frame),
        }
        typer.echo(json.dumps(document, indent=2, default=str))
        return
    names, texts = table(data.frame, widget, zone)
    shown = texts[:max_rows] if max_rows else texts
    caption = f"source {source} · computed {_when(data.compute_time)} · {data.frame.row_count} row(s)"
    if data.masked:
        caption += " · PHI masked"
    if data.frame.truncated:
        caption += " · truncated by the row cap"
    if len(shown) < len(texts):
        caption += f" · showing {len(shown)}"
    grid = Table()
    for name in names:
        grid.add_column(name, overflow="fold")
    for row in shown:
        grid.add_row(*row)
    out = Console()
    out.print(grid)
    out.print(caption, highlight=False)


# --- materialize and export ------------------------------------------------------------------


def _job_progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )


@_reports_errors
def materialize(
    dashboard_id: Annotated[str, typer.Argument(help="Dashboard UUID.")],
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    link_token: LinkToken = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    filter_: Filters = None,
    version: Annotated[int, typer.Option(help="Dashboard version (0: current, or published for readers).")] = 0,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the job to its end.")] = True,
) -> None:
    """Materialize every widget of a dashboard into the cache, with a live progress bar."""
    filters = _pairs(filter_, "--filter")
    err, out = Console(stderr=True), Console()
    with _client(address, token, link_token, ca_file, cert_file, key_file) as client:
        job = client.widgets.materialize(dashboard_id, dashboard_version=version, filters=filters)
        if not wait:
            out.print(f"job {job.id} {_state(job.state)}", highlight=False)
            return
        with _job_progress(err) as progress:
            task = progress.add_task("materializing", total=100, detail="queued")

            def show(snapshot: w.MaterializationJob) -> None:
                detail = snapshot.progress.message or _state(snapshot.state).lower()
                progress.update(task, completed=snapshot.progress.percent, detail=detail)

            final = client.widgets.wait_job(job, on_progress=show, check=False)
    grid = Table(title=f"job {final.id}: {_state(final.state)}")
    for name in ("widget", "state", "rows", "error"):
        grid.add_column(name, overflow="fold")
    for entry in final.widgets:
        error = f"{entry.error.reason}: {entry.error.message}" if entry.HasField("error") else ""
        grid.add_row(entry.widget_id, _state(entry.state), str(entry.row_count), error)
    out.print(grid)
    if final.state != c.JOB_STATE_SUCCEEDED:
        raise JobFailedError(final)


class Format(StrEnum):
    pdf = "pdf"
    png = "png"
    csv = "csv"
    xlsx = "xlsx"


class Paper(StrEnum):
    a4 = "a4"
    a3 = "a3"
    letter = "letter"
    legal = "legal"


class PageOrientation(StrEnum):
    landscape = "landscape"
    portrait = "portrait"


FORMATS = {
    Format.pdf: e.EXPORT_FORMAT_PDF,
    Format.png: e.EXPORT_FORMAT_PNG,
    Format.csv: e.EXPORT_FORMAT_CSV,
    Format.xlsx: e.EXPORT_FORMAT_XLSX,
}
PAPERS = {
    Paper.a4: e.PAPER_SIZE_A4,
    Paper.a3: e.PAPER_SIZE_A3,
    Paper.letter: e.PAPER_SIZE_LETTER,
    Paper.legal: e.PAPER_SIZE_LEGAL,
}
ORIENTATIONS = {PageOrientation.landscape: e.ORIENTATION_LANDSCAPE, PageOrientation.portrait: e.ORIENTATION_PORTRAIT}


def _margins(text: str | None) -> e.Margins | None:
    """'10' for all four sides, or 'TOP,RIGHT,BOTTOM,LEFT' in millimetres."""
    if text is None:
        return None
    try:
        sides = [float(part) for part in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not MM or TOP,RIGHT,BOTTOM,LEFT", param_hint="--margins") from None
    if len(sides) == 1:
        sides *= 4
    if len(sides) != 4:
        raise typer.BadParameter("give one value or four (TOP,RIGHT,BOTTOM,LEFT)", param_hint="--margins")
    return e.Margins(top_mm=sides[0], right_mm=sides[1], bottom_mm=sides[2], left_mm=sides[3])


@_reports_errors
def export(
    dashboard_id: Annotated[str, typer.Argument(help="Dashboard UUID (none with --query).")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    link_token: LinkToken = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    format_: Annotated[Format, typer.Option("--format", help="File format.")] = Format.pdf,
    paper: Annotated[Paper, typer.Option(help="PDF paper size.")] = Paper.a4,
    orientation: Annotated[PageOrientation, typer.Option(help="PDF orientation.")] = PageOrientation.landscape,
    margins: Annotated[
        str | None, typer.Option(help="PDF margins in mm: MM or TOP,RIGHT,BOTTOM,LEFT (default 10).")
    ] = None,
    header: Annotated[str, typer.Option(help="PDF header text.")] = "",
    footer: Annotated[str, typer.Option(help="PDF footer text (page numbers are always added).")] = "",
    background: Annotated[bool, typer.Option("--background/--no-background", help="Print backgrounds.")] = True,
    scale: Annotated[int, typer.Option(help="PNG device scale factor, 1-4 (0: default 2).")] = 0,
    transparent: Annotated[bool, typer.Option("--transparent", help="PNG transparent background.")] = False,
    width_px: Annotated[int, typer.Option(help="PNG viewport width in CSS px (0: default 1280).")] = 0,
    version: Annotated[int, typer.Option(help="Dashboard version (0: the published one).")] = 0,
    filter_: Filters = None,
    out: Annotated[
        Path, typer.Option("--out", help="File to write, or a directory for the server's file name.")
    ] = Path("."),
    widget: Annotated[str, typer.Option("--widget", help="CSV/XLSX: the widget whose data to export.")] = "",
    query: Annotated[
        str, typer.Option("--query", help="CSV/XLSX: a saved query whose run to export (no dashboard).")
    ] = "",
    query_version: Annotated[int, typer.Option(help="With --query: the version to run (0: latest).")] = 0,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="With --query: parameter NAME=VALUE; repeatable.", show_default=False),
    ] = None,
) -> None:
    """Export a dashboard to PDF or PNG, or a widget's data or a saved query's run to CSV or XLSX,
    and download it, with live progress and a verified sha256."""
    if bool(query) == bool(dashboard_id):
        raise typer.BadParameter("give a DASHBOARD_ID or --query QUERY_ID (not both)", param_hint="DASHBOARD_ID")
    if query and format_ not in (Format.csv, Format.xlsx):
        raise typer.BadParameter("a saved query's run exports as csv or xlsx", param_hint="--format")
    parameters = _pairs(param, "--param")
    options = e.ExportOptions(
        paper_size=PAPERS[paper],
        orientation=ORIENTATIONS[orientation],
        margins=_margins(margins),
        header_text=header,
        footer_text=footer,
        print_background=background,
        scale_factor=scale,
        transparent_background=transparent,
        width_px=width_px,
    )
    filters = _pairs(filter_, "--filter")
    err = Console(stderr=True)
    with _client(address, token, link_token, ca_file, cert_file, key_file) as client, _job_progress(err) as progress:
        task = progress.add_task(f"exporting {format_.value}", total=100, detail="queued")
        download_task: list[Any] = []

        def show(job: e.ExportJob) -> None:
            stage = str(e.ExportStage.Name(job.stage)).removeprefix("EXPORT_STAGE_").lower()
            progress.update(task, completed=job.progress.percent, detail=job.progress.message or stage)

        def received(done: int, total: int) -> None:
            if not download_task:
                download_task.append(progress.add_task("downloading", total=total, detail=""))
            progress.update(download_task[0], completed=done)

        if query:
            result = client.exports.export_query(
                query,
                out,
                format=FORMATS[format_],
                parameters=parameters,
                query_version=query_version,
                on_progress=show,
                on_bytes=received,
            )
        else:
            result = client.exports.export(
                dashboard_id,
                out,
                format=FORMATS[format_],
                options=options,
                dashboard_version=version,
                filters=filters,
                on_progress=show,
                on_bytes=received,
                widget_id=widget,
            )
    file = result.file
    if file.content_type == "application/pdf":
        pages = f"{file.page_count} page(s)"
    elif file.content_type == "image/png":
        pages = f"{file.width_px}x{file.height_px} px"
    else:
        pages = f"{file.row_count} row(s)"
    Console().print(
        f"{result.path}  {file.content_type}  {file.size_bytes} bytes  {pages}  sha256 {file.sha256}", highlight=False
    )


__all__ += ["export", "get_dashboard", "list_dashboards", "materialize", "widget_data"]
