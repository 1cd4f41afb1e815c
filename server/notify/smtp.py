"""E-mail over SMTP (aiosmtplib): one message per recipient, so no recipient learns the others'
addresses; STARTTLS and login when the settings ask. Temporary failures (4xx replies, a lost or
refused connection) are retried with backoff; permanent ones (5xx) are not."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from server.config import Settings
from server.notify.outcome import Outcome, backoff

__all__ = ["Attachment", "Mail", "SmtpSender"]

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


def _temporary(error: Exception) -> bool:
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 400 <= error.code < 500
    return isinstance(
        error, (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError)
    )


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, recipient: str, mail: Mail, *, attempts: int | None = None) -> Outcome:
        settings = self._settings
        target = f"mailto:{recipient}"
        if not settings.smtp_host:
            return Outcome(target, False, 0, "no SMTP server is configured (TESSERA_SMTP_HOST)")
        message = _message(settings.smtp_from, recipient, mail)
        tries = attempts or settings.webhook_attempts
        error = ""
        for attempt in range(1, tries + 1):
            try:
                await aiosmtplib.send(
                    message,
                    hostname=settings.smtp_host,
                    port=settings.smtp_port,
                    username=settings.smtp_username or None,
                    password=settings.smtp_password.get_secret_value() or None,
                    start_tls=settings.smtp_starttls,
                    timeout=settings.smtp_timeout_seconds,
                )
                return Outcome(target, True, attempt)
            except (aiosmtplib.SMTPException, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("notify: e-mail to %s failed (attempt %d): %s", recipient, attempt, error)
                if not _temporary(exc) or attempt == tries:
                    return Outcome(target, False, attempt, error)
                await asyncio.sleep(backoff(settings.webhook_backoff_seconds, attempt))
        return Outcome(target, False, tries, error)
