"""`tessera alerts …`: threshold alert rules from the command line (through the Python client)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from dashboard.v1 import alert_pb2 as a
from server.devtools.cli_client import (
    Address,
    AsJson,
    CaFile,
    CertFile,
    Filters,
    KeyFile,
    Token,
    _client,
    _pairs,
    _print_json,
    _reports_errors,
    _when,
)
from tessera_client.alerts import COMPARISONS, REDUCERS, SEVERITIES, rule
from tessera_client.client import DEFAULT_ADDRESS, Client

__all__ = ["alerts_app"]

alerts_app = typer.Typer(no_args_is_help=True, help="Threshold alerts on widget data.")
RuleId = Annotated[str, typer.Argument(help="Alert rule UUID.")]


def _connect(address: str, token: str | None, ca: object, cert: object, key: object) -> Client:
    return _client(address, token, None, ca, cert, key)  # type: ignore[arg-type]


def _name(enum: type, prefix: str, value: int) -> str:
    return str(enum.Name(value)).removeprefix(prefix)  # type: ignore[attr-defined]


def _show(found: a.AlertRule, as_json: bool) -> None:
    if as_json:
        _print_json(found)
        return
    out = Console()
    state = _name(a.AlertState, "ALERT_STATE_", found.state)
    out.print(f"rule {found.id}: {state} since {_when(found.state_time) or '-'}", highlight=False)
    reducer = _name(a.AlertReducer, "ALERT_REDUCER_", found.reducer).lower()
    compare = {v: k for k, v in COMPARISONS.items()}.get(found.comparison, "?")
    hold = f" for {found.for_duration.seconds}s" if found.for_duration.seconds else ""
    out.print(f"  condition  {reducer}({found.column}) {compare} {found.threshold:g}{hold}", highlight=False)
    out.print(f"  widget     {found.widget_id}   every {found.interval.seconds}s", highlight=False)
    out.print(f"  last value {found.last_value:g} at {_when(found.last_evaluation_time) or '-'}", highlight=False)
    if found.last_error:
        out.print(f"  error      {found.last_error}", highlight=False)
    if found.HasField("silenced_until"):
        out.print(f"  silenced until {_when(found.silenced_until)}", highlight=False)
    if found.webhook_secret:
        out.print(f"  webhook secret (shown once): {found.webhook_secret}", highlight=False)


@alerts_app.command("create")
@_reports_errors
def create(
    widget_id: Annotated[str, typer.Argument(help="Widget UUID whose data is watched.")],
    column: Annotated[str, typer.Option(help="Column of the widget's data.")],
    threshold: Annotated[float, typer.Option(help="The threshold.")],
    reducer: Annotated[str, typer.Option(help=f"{'|'.join(REDUCERS)}.")] = "last",
    comparison: Annotated[str, typer.Option("--when", help=f"{' '.join(COMPARISONS)}.")] = ">",
    for_seconds: Annotated[int, typer.Option("--for", help="Seconds the condition must hold first.")] = 0,
    interval: Annotated[int, typer.Option(help="Seconds between evaluations (at least 60).")] = 60,
    email: Annotated[list[str] | None, typer.Option("--email", help="Recipient address; repeatable.")] = None,
    webhook: Annotated[list[str] | None, typer.Option("--webhook", help="Webhook URL; repeatable.")] = None,
    severity: Annotated[str, typer.Option(help=f"{'|'.join(SEVERITIES)}.")] = "warning",
    title: Annotated[str, typer.Option(help="A name for people.")] = "",
    filters: Filters = None,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Create a rule: notified on FIRING and RESOLVED."""
    try:
        made = rule(
            widget_id,
            column=column,
            reducer=reducer,
            comparison=comparison,
            threshold=threshold,
            for_seconds=for_seconds,
            interval_seconds=interval,
            filters=_pairs(filters, "--filter"),
            emails=email or (),
            webhooks=webhook or (),
            severity=severity,
            title=title,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        _show(client.alerts.create(made), as_json)


@alerts_app.command("list")
@_reports_errors
def list_rules(
    widget: Annotated[str, typer.Option(help="Only this widget's.")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """List the rules you own (all of your facilities' as an admin)."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        found = list(client.alerts.list(widget_id=widget))
    if as_json:
        typer.echo(json.dumps([json.loads(json_format.MessageToJson(x)) for x in found], indent=2))
        return
    grid = Table(title=f"{len(found)} rule(s)")
    for name in ("id", "title", "state", "severity", "last value", "evaluated"):
        grid.add_column(name, no_wrap=name == "id", overflow="fold")
    for x in found:
        grid.add_row(
            x.id,
            x.title,
            _name(a.AlertState, "ALERT_STATE_", x.state),
            _name(a.AlertSeverity, "ALERT_SEVERITY_", x.severity),
            f"{x.last_value:g}",
            _when(x.last_evaluation_time),
        )
    Console().print(grid)


@alerts_app.command("get")
@_reports_errors
def get(
    rule_id: RuleId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Show one rule and its state."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        _show(client.alerts.get(rule_id), as_json)


@alerts_app.command("silence")
@_reports_errors
def silence(
    rule_id: RuleId,
    minutes: Annotated[int, typer.Option(help="Silence for this many minutes; 0 ends a silence.")] = 60,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """Hold notifications back (the state is still evaluated and recorded)."""
    until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes) if minutes > 0 else None
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        _show(client.alerts.silence(rule_id, until), False)


@alerts_app.command("delete")
@_reports_errors
def delete(
    rule_id: RuleId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """Delete a rule and its history."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        client.alerts.delete(rule_id)
    typer.echo(f"deleted {rule_id}")


@alerts_app.command("events")
@_reports_errors
def events(
    rule_id: RuleId,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """A rule's state changes and what became of their notifications."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        found = []
        for event in client.alerts.events(rule_id):
            found.append(event)
            if len(found) >= limit:
                break
    out = Console()
    for event in found:
        change = f"{_name(a.AlertState, 'ALERT_STATE_', event.from_state)} -> "
        change += _name(a.AlertState, "ALERT_STATE_", event.to_state)
        told = _name(a.NotificationOutcome, "NOTIFICATION_OUTCOME_", event.notification)
        detail = event.error or f"value {event.value:g}"
        out.print(f"#{event.revision} {_when(event.time)} {change} ({detail}) notification {told}", highlight=False)


@alerts_app.command("watch")
@_reports_errors
def watch(
    rule_id: RuleId,
    count: Annotated[int, typer.Option(help="Stop after this many state changes (0: never).")] = 0,
    since: Annotated[int, typer.Option(help="Resume after this revision.")] = 0,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """Follow a rule's state changes as they happen."""
    seen = 0
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        for item in client.alerts.follow(rule_id, since_revision=since):
            if isinstance(item, a.AlertRule):
                _show(item, False)
                continue
            seen += 1
            change = f"{_name(a.AlertState, 'ALERT_STATE_', item.from_state)} -> "
            typer.echo(
                f"#{item.revision} {_when(item.time)} {change}{_name(a.AlertState, 'ALERT_STATE_', item.to_state)}"
            )
            if count and seen >= count:
                return
