"""STARTTLS for e-mailed reports, on real SMTP servers (aiosmtpd on loopback): a server that
requires STARTTLS, with a certificate signed by a CA the test makes, gets the mail over TLS when
the client trusts that CA; an untrusted certificate, and a server that offers no STARTTLS while
the settings require it, fail the delivery at once with a clear error and never send in clear;
through a real worker, that error is what the delivery history records."""

from __future__ import annotations

import ssl
import time
from typing import Any

import grpc
import pytest

from dashboard.v1 import report_pb2 as r
from dashboard.v1 import report_pb2_grpc
from server.config import Settings
from server.notify.smtp import Mail, SmtpSender
from tests.harness.certs import Authority, make_authority
from tests.harness.exports import ExportKit, stubs_for
from tests.harness.notify_stack import notify_stack, until
from tests.harness.receivers import smtp_receiver
from tests.harness.worker_metrics import worker_sample
from tests.reports.helpers import phi_board, subscription

MAIL = Mail(subject="Weekly report", text="See the attachment.")
ENDED = {r.DELIVERY_STATE_DELIVERED, r.DELIVERY_STATE_PARTIALLY_DELIVERED, r.DELIVERY_STATE_FAILED}


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return make_authority(tmp_path_factory.mktemp("smtp-ca"), "smtp")


@pytest.fixture(scope="module")
def server_tls(authority: Authority) -> ssl.SSLContext:
    issued = authority.issue("smtp", server=True)  # for 127.0.0.1 and localhost
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    return context


def _sender(settings: Settings, port: int, **extra: Any) -> SmtpSender:
    fields = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_from": "reports@tessera.test"} | extra
    return SmtpSender(Settings(**(settings.model_dump() | fields)))


async def test_starttls_delivers_over_tls_to_a_server_that_requires_it(
    settings: Settings, authority: Authority, server_tls: ssl.SSLContext
) -> None:
    with smtp_receiver(server_tls) as (smtp, port):
        sender = _sender(settings, port, smtp_starttls=True, smtp_ca_file=authority.cert)
        outcome = await sender.send("ipc@example.org", MAIL, attempts=1)
        assert outcome.delivered, outcome.error
        (message,) = smtp.to("ipc@example.org")
        assert message["Subject"] == "Weekly report" and smtp.over_tls == [True]


async def test_the_server_really_refuses_mail_in_clear(settings: Settings, server_tls: ssl.SSLContext) -> None:
    with smtp_receiver(server_tls) as (smtp, port):
        outcome = await _sender(settings, port, smtp_starttls=False).send("ipc@example.org", MAIL, attempts=2)
        assert not outcome.delivered and outcome.attempts == 1, "a 5xx refusal is not retried"
        assert "530" in outcome.error and "STARTTLS" in outcome.error, outcome.error
        assert smtp.messages == []


async def test_a_certificate_the_client_does_not_trust_fails_without_sending(
    settings: Settings, server_tls: ssl.SSLContext
) -> None:
    with smtp_receiver(server_tls) as (smtp, port):
        # No TESSERA_SMTP_CA_FILE: the system's trust store does not know the test's CA.
        outcome = await _sender(settings, port, smtp_starttls=True).send("ipc@example.org", MAIL, attempts=3)
        assert not outcome.delivered and outcome.attempts == 1, "a certificate that fails fails every time"
        assert "certificate" in outcome.error.lower(), outcome.error
        assert smtp.messages == []


async def test_a_server_offering_no_starttls_fails_the_delivery_when_it_is_required(settings: Settings) -> None:
    with smtp_receiver() as (smtp, port):
        outcome = await _sender(settings, port, smtp_starttls=True).send("ipc@example.org", MAIL, attempts=3)
        assert not outcome.delivered and outcome.attempts == 1
        assert "offers no STARTTLS" in outcome.error and "nothing was sent" in outcome.error, outcome.error
        assert smtp.messages == [], "never sent in clear"


def test_the_delivery_history_records_a_missing_starttls(settings: Settings, migrated: str, auth: Any) -> None:
    """A real worker required to use STARTTLS, pointed at a server without it: the delivery
    fails with that reason, and the mail never left."""
    facility = f"fac-{time.time_ns()}"
    owner = auth("qa@example.org", "editor", facility)
    required = {"TESSERA_SMTP_STARTTLS": "true"}
    with notify_stack(settings, queues="exports,maintenance", worker_extra=required) as stack:
        with grpc.insecure_channel(stack.server.address) as channel:
            reports = report_pb2_grpc.ReportServiceStub(channel)
            board = phi_board(ExportKit(stubs_for(channel), owner, facility))
            made = reports.CreateReportSubscription(
                r.CreateReportSubscriptionRequest(
                    subscription=subscription(board.id, emails=("ipc@example.org",), webhooks=())
                ),
                metadata=owner,
            )
            delivery = reports.SendReportNow(r.SendReportNowRequest(id=made.id), metadata=owner)
            done = until("the delivery's end", lambda: _ended(reports, owner, made.id, delivery.id))
        for result, count in (("failed", 1), ("delivered", 0)):
            sent = worker_sample(stack.worker, "tessera_notification_deliveries_total", channel="email", outcome=result)
            assert sent == count, result
        assert stack.smtp.messages == []
    assert done.state == r.DELIVERY_STATE_FAILED, done
    (outcome,) = done.recipients
    assert outcome.recipient == "mailto:ipc@example.org" and not outcome.delivered
    assert "offers no STARTTLS" in outcome.error and "TESSERA_SMTP_STARTTLS" in outcome.error, outcome.error


def _ended(reports: Any, md: Any, sub_id: str, delivery_id: str) -> r.ReportDelivery | None:
    answer = reports.ListReportDeliveries(r.ListReportDeliveriesRequest(subscription_id=sub_id), metadata=md)
    return next((x for x in answer.deliveries if x.id == delivery_id and x.state in ENDED), None)
