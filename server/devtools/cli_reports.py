"""`tessera reports …`: scheduled report subscriptions from the command line (through the
Python client, like the other client commands in cli_client.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from dashboard.v1 import export_pb2 as e
from dashboard.v1 import report_pb2 as r
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
from tessera_client.client import DEFAULT_ADDRESS, Client

__all__ = ["reports_app"]

reports_app = typer.Typer(no_args_is_help=True, help="Scheduled report subscriptions (e-mail and webhooks).")
SubscriptionId = Annotated[str, typer.Argument(help="Subscription UUID.")]
FORMATS = {"pdf": e.EXPORT_FORMAT_PDF, "png": e.EXPORT_FORMAT_PNG}


def _connect(address: str, token: str | None, ca: object, cert: object, key: object) -> Client:
    return _client(address, token, None, ca, cert, key)  # type: ignore[arg-type]


def _state(state: int) -> str:
    return str(r.SubscriptionState.Name(state)).removeprefix("SUBSCRIPTION_STATE_")


def _show(sub: r.ReportSubscription, as_json: bool) -> None:
    if as_json:
        _print_json(sub)
        return
    out = Console()
    out.print(f"subscription {sub.id}: {_state(sub.state)}", highlight=False)
    out.print(f"  dashboard  {sub.dashboard_id}   owner {sub.owner_id}", highlight=False)
    out.print(f"  schedule   '{sub.schedule.cron}' {sub.schedule.time_zone}; next {_when(sub.next_run_time) or '-'}")
    out.print(f"  recipients {', '.join([*sub.recipients.emails, *sub.recipients.webhooks])}", highlight=False)
    if sub.stop_reason:
        out.print(f"  stopped    {sub.stop_reason}", highlight=False)
    if sub.webhook_secret:
        out.print(f"  webhook secret (shown once): {sub.webhook_secret}", highlight=False)


@reports_app.command("create")
@_reports_errors
def create(
    dashboard_id: Annotated[str, typer.Argument(help="Dashboard UUID (its published version is sent).")],
    cron: Annotated[str, typer.Option(help="Five-field cron, e.g. '0 7 * * 1' (Mondays 07:00).")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone the cron is read in.")] = "UTC",
    email: Annotated[list[str] | None, typer.Option("--email", help="Recipient address; repeatable.")] = None,
    webhook: Annotated[list[str] | None, typer.Option("--webhook", help="Webhook URL; repeatable.")] = None,
    title: Annotated[str, typer.Option(help="A name for people.")] = "",
    fmt: Annotated[str, typer.Option("--format", help="pdf or png.")] = "pdf",
    filters: Filters = None,
    include_phi: Annotated[bool, typer.Option("--include-phi", help="Unmasked PHI (needs phi:read).")] = False,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Subscribe recipients to a dashboard on a schedule."""
    if fmt.lower() not in FORMATS:
        raise typer.BadParameter("pdf or png", param_hint="--format")
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        sub = client.reports.create(
            dashboard_id,
            cron=cron,
            time_zone=tz,
            emails=email or (),
            webhooks=webhook or (),
            title=title,
            format=FORMATS[fmt.lower()],
            filters=_pairs(filters, "--filter"),
            include_phi=include_phi,
        )
    _show(sub, as_json)


@reports_app.command("list")
@_reports_errors
def list_subscriptions(
    dashboard: Annotated[str, typer.Option(help="Only this dashboard's.")] = "",
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """List the subscriptions you own (all of your facilities' as an admin)."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        found = list(client.reports.list(dashboard_id=dashboard))
    if as_json:
        typer.echo(json.dumps([json.loads(json_format.MessageToJson(s)) for s in found], indent=2))
        return
    grid = Table(title=f"{len(found)} subscription(s)")
    for name in ("id", "title", "state", "schedule", "next run", "recipients"):
        grid.add_column(name, no_wrap=name == "id", overflow="fold")
    for sub in found:
        grid.add_row(
            sub.id,
            sub.title,
            _state(sub.state),
            f"{sub.schedule.cron} {sub.schedule.time_zone}",
            _when(sub.next_run_time),
            str(len(sub.recipients.emails) + len(sub.recipients.webhooks)),
        )
    Console().print(grid)


@reports_app.command("get")
@_reports_errors
def get(
    subscription_id: SubscriptionId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Show one subscription."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        _show(client.reports.get(subscription_id), as_json)


@reports_app.command("pause")
@_reports_errors
def pause(
    subscription_id: SubscriptionId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """Stop scheduled deliveries until resumed."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        _show(client.reports.pause(subscription_id), False)


@reports_app.command("resume")
@_reports_errors
def resume(
    subscription_id: SubscriptionId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """Deliver on the schedule again, from the next due time."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        _show(client.reports.resume(subscription_id), False)


@reports_app.command("delete")
@_reports_errors
def delete(
    subscription_id: SubscriptionId,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """Delete a subscription and its delivery history."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        client.reports.delete(subscription_id)
    typer.echo(f"deleted {subscription_id}")


@reports_app.command("send")
@_reports_errors
def send(
    subscription_id: SubscriptionId,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the delivery to its end.")] = True,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Deliver the report now; exits 1 unless every recipient got it."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        delivery = client.reports.send_now(subscription_id)
        if wait:
            delivery = client.reports.wait_delivery(delivery.id)
    if as_json:
        _print_json(delivery)
    else:
        _print_delivery(delivery)
    if wait and delivery.state != r.DELIVERY_STATE_DELIVERED:
        raise typer.Exit(1)


@reports_app.command("deliveries")
@_reports_errors
def deliveries(
    subscription_id: SubscriptionId,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    address: Address = DEFAULT_ADDRESS,
    token: Token = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
) -> None:
    """A subscription's delivery history: when, to whom, and how it went."""
    with _connect(address, token, ca_file, cert_file, key_file) as client:
        found = []
        for delivery in client.reports.deliveries(subscription_id):
            found.append(delivery)
            if len(found) >= limit:
                break
    for delivery in found:
        _print_delivery(delivery)


def _print_delivery(delivery: r.ReportDelivery) -> None:
    out = Console()
    state = str(r.DeliveryState.Name(delivery.state)).removeprefix("DELIVERY_STATE_")
    out.print(f"delivery {delivery.id} ({_when(delivery.due_time)}): {state}", highlight=False)
    for outcome in delivery.recipients:
        mark = "sent" if outcome.delivered else f"FAILED after {outcome.attempts}: {outcome.error}"
        out.print(f"  {outcome.recipient}: {mark}", highlight=False)
    if delivery.HasField("error"):
        out.print(f"  {delivery.error.reason}: {delivery.error.message}", highlight=False)
