"""E-mail over SMTP (aiosmtplib): one message per recipient, so no recipient learns the others'
addresses; STARTTLS and login when the settings ask. Temporary failures (4xx replies, a lost or
refused connection) are retried with backoff; permanent ones (5xx) are not.

With `TESSERA_SMTP_STARTTLS` the connection is upgraded before anything is sent, the server's
certificate verified (against `TESSERA_SMTP_CA_FILE` when set): a server that offers no STARTTLS,
or one whose certificate does not verify, fails the delivery with that reason, at once and never
by sending in clear."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from server.config import Settings
from server.notify.outcome import DeliveryObserver, Outcome, backoff

__all__ = ["Attachment", "Mail", "SmtpSender", "StartTlsUnavailable"]

log = logging.getLogger("tessera.notify")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    attachment: Attachment | None = None


def _message(sender: str, recipient: str, mail: Mail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = mail.subject
    message.set_content(mail.text)
    if mail.attachment is not None:
        main, _, sub = mail.attachment.content_type.partition("/")
        message.add_attachment(mail.attachment.data, maintype=main, subtype=sub, filename=mail.attachment.filename)
    return message


class StartTlsUnavailable(aiosmtplib.SMTPException):
    """STARTTLS is required and the server does not offer it: nothing is sent."""


def _temporary(error: Exception) -> bool:
    if isinstance(error, StartTlsUnavailable | ssl.SSLError):
        return False  # the same server answers the same way next time
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 400 <= error.code < 500
    return isinstance(
        error, (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError)
    )


class SmtpSender:
    def __init__(self, settings: Settings, observe: DeliveryObserver | None = None) -> None:
        self._settings = settings
        self._observe = observe
        self._tls: ssl.SSLContext | None = None
        if settings.smtp_starttls:
            cafile = str(settings.smtp_ca_file) if settings.smtp_ca_file else None
            self._tls = ssl.create_default_context(cafile=cafile)

    async def _send(self, message: EmailMessage) -> None:
        settings = self._settings
        # start_tls=False: aiosmtplib would otherwise upgrade opportunistically, or (True) with its
        # own context; the upgrade is done here so that a missing STARTTLS has its own error.
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.smtp_timeout_seconds,
            start_tls=False,
            tls_context=self._tls,
        )
        async with client:
            if self._tls is not None:
                await client.ehlo()
                if not client.supports_extension("starttls"):
                    raise StartTlsUnavailable(
                        f"the SMTP server {settings.smtp_host}:{settings.smtp_port} offers no STARTTLS, which "
                        "TESSERA_SMTP_STARTTLS requires: nothing was sent"
                    )
                await client.starttls(tls_context=self._tls)
            if settings.smtp_username:
                await client.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            await client.send_message(message)

    async def send(self, recipient: str, mail: Mail, *, attempts: int | None = None) -> Outcome:
        started = time.perf_counter()
        outcome = await self._deliver(recipient, mail, attempts)
        if self._observe is not None:
            self._observe("email", outcome.delivered, time.perf_counter() - started)
        return outcome

    async def _deliver(self, recipient: str, mail: Mail, attempts: int | None) -> Outcome:
        settings = self._settings
        target = f"mailto:{recipient}"
        if not settings.smtp_host:
            return Outcome(target, False, 0, "no SMTP server is configured (TESSERA_SMTP_HOST)")
        message = _message(settings.smtp_from, recipient, mail)
        tries = attempts or settings.webhook_attempts
        error = ""
        for attempt in range(1, tries + 1):
            try:
                await self._send(message)
                return Outcome(target, True, attempt)
            except (aiosmtplib.SMTPException, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("notify: e-mail to %s failed (attempt %d): %s", recipient, attempt, error)
                if not _temporary(exc) or attempt == tries:
                    return Outcome(target, False, attempt, error)
                await asyncio.sleep(backoff(settings.webhook_backoff_seconds, attempt))
        return Outcome(target, False, tries, error)
