"""`tessera search …` and `tessera favorites …`: ranked search and favorite dashboards from the
command line (through the Python client)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dashboard.v1 import search_pb2 as sr
from server.devtools.cli_client import (
    Address,
    AsJson,
    CaFile,
    CertFile,
    KeyFile,
    Token,
    _client,
    _print_json,
    _reports_errors,
    _when,
)
from tessera_client.client import DEFAULT_ADDRESS, Client
from tessera_client.search import KINDS

__all__ = ["favorites_app", "search"]

favorites_app = typer.Typer(no_args_is_help=True, help="Your favorite dashboards.")
DashboardId = Annotated[str, typer.Argument(help="Dashboard UUID.")]


def _connect(address: str, token: str | None, ca: object, cert: object, key: object) -> Client:
    return _client(address, token, None, ca, cert, key)  # type: ignore[arg-type]


def _kind(value: int) -> str:
    return str(sr.SearchResultKind.Name(value)).removeprefix("SEARCH_RESULT_KIND_").lower()


def _snippet(result: sr.SearchResult) -> Text:
    """The snippet with its matched words in bold (rich styles, never markup from the text)."""
    text = Text(result.snippet)
    for span in result.highlights:
        text.stylize("bold", span.start, span.end)
    return text


@_reports_errors
def search(
    words: Annotated[str, typer.Argument(help="What to look for, as in a web search box.")],
    kind: Annotated[
        list[str] | None, typer.Option(help=f"Only results of this kind ({', '.join(KINDS)}); repeatable.")
    ] = None,
    favorites_first: Annotated[bool, typer.Option("--favorites-first", help="Your favorites first.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many (0: all).")] = 20,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Search the dashboards, widgets and saved queries you may see, best first."""
    unknown = sorted(set(kind or ()) - set(KINDS))
    if unknown:
        raise typer.BadParameter(f"unknown kind {unknown[0]!r}; one of {', '.join(KINDS)}", param_hint="--kind")
    found: list[sr.SearchResult] = []
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        page_size = min(limit, 100) if limit else 100
        for result in client.search.find(words, kinds=kind or (), favorites_first=favorites_first, page_size=page_size):
            found.append(result)
            if limit and len(found) >= limit:
                break
    if as_json:
        typer.echo(json.dumps([json.loads(json_format.MessageToJson(x)) for x in found], indent=2))
        return
    grid = Table(title=f"{len(found)} result(s) for {words!r}")
    for name in ("kind", "id", "title", "snippet", "score", "★"):
        grid.add_column(name, no_wrap=name == "id", overflow="fold")
    for x in found:
        grid.add_row(_kind(x.kind), x.id, x.title, _snippet(x), f"{x.score:.3f}", "★" if x.favorite else "")
    Console().print(grid)


@favorites_app.command("add")
@_reports_errors
def add(
    dashboard_id: DashboardId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Mark a dashboard you may read as a favorite."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        favorite = client.search.add_favorite(dashboard_id)
    if as_json:
        _print_json(favorite)
        return
    typer.echo(f"favorite {favorite.dashboard_id} since {_when(favorite.create_time)}")


@favorites_app.command("remove")
@_reports_errors
def remove(
    dashboard_id: DashboardId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """Remove a dashboard from your favorites."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        client.search.remove_favorite(dashboard_id)
    typer.echo(f"removed {dashboard_id}")


@favorites_app.command("list")
@_reports_errors
def list_favorites(
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """List your favorites that you may still read, newest first."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        found = list(client.search.favorites())
    if as_json:
        typer.echo(json.dumps([json.loads(json_format.MessageToJson(x)) for x in found], indent=2))
        return
    grid = Table(title=f"{len(found)} favorite(s)")
    for name in ("id", "title", "tags", "since"):
        grid.add_column(name, no_wrap=name == "id", overflow="fold")
    for x in found:
        grid.add_row(x.dashboard_id, x.dashboard.title, ", ".join(x.dashboard.tags), _when(x.create_time))
    Console().print(grid)
