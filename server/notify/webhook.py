"""Signed webhooks: a JSON POST with `Tessera-Signature` (server/notify/signing.py), retried with
backoff on a lost connection, a timeout, 408, 429 or 5xx; any other answer is final. URLs are
https; plain http only to a loopback address, and only outside production (`check_url`). Every
attempt resolves the host, refuses internal addresses and connects to the address it checked
(server/notify/targets.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from urllib.parse import urlsplit

import httpx

from server.config import Mode, Settings
from server.notify.outcome import DeliveryObserver, Outcome, backoff
from server.notify.targets import TargetRefused, pinned_transport, resolve_target
from tessera_client.webhooks import SIGNATURE_HEADER, sign

__all__ = ["DELIVERY_HEADER", "WebhookSender", "check_url"]

log = logging.getLogger("tessera.notify")

DELIVERY_HEADER = "Tessera-Delivery-Id"
RETRIED_STATUSES = frozenset({408, 425, 429})


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, settings: Settings) -> str | None:
    """Why `url` may not receive webhooks, or None when it may."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "a webhook URL needs a host"
    if parts.username or parts.password:
        return "a webhook URL may not carry credentials"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _loopback(parts.hostname):
        if settings.webhook_allow_loopback_http and settings.mode is not Mode.PRODUCTION:
            return None
        return "plain http is allowed only to loopback addresses outside production"
    return "a webhook URL must be https"


class WebhookSender:
    def __init__(self, settings: Settings, observe: DeliveryObserver | None = None) -> None:
        self._settings = settings
        self._observe = observe

    async def send(self, url: str, body: bytes, secret: str, delivery_id: str) -> Outcome:
        started = time.perf_counter()
        outcome = await self._deliver(url, body, secret, delivery_id)
        if self._observe is not None:
            self._observe("webhook", outcome.delivered, time.perf_counter() - started)
        return outcome

    async def _deliver(self, url: str, body: bytes, secret: str, delivery_id: str) -> Outcome:
        settings = self._settings
        problem = check_url(url, settings)
        if problem is not None:
            return Outcome(url, False, 0, problem)
        error = ""
        for attempt in range(1, settings.webhook_attempts + 1):
            headers = {
                "content-type": "application/json",
                # Signed anew each attempt: the timestamp says when this request was made.
                SIGNATURE_HEADER: sign(secret, body),
                DELIVERY_HEADER: delivery_id,
            }
            retry = True
            try:
                target = await resolve_target(url, settings)
                async with httpx.AsyncClient(
                    transport=pinned_transport(target),
                    timeout=settings.webhook_timeout_seconds,
                    follow_redirects=False,
                ) as client:
                    answer = await client.post(url, content=body, headers=headers)
                if answer.is_success:
                    return Outcome(url, True, attempt)
                error = f"HTTP {answer.status_code}"
                retry = answer.status_code >= 500 or answer.status_code in RETRIED_STATUSES
            except TargetRefused as exc:
                error = f"refused: {exc}"[:500]
                retry = not exc.final
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("notify: webhook %s failed (attempt %d): %s", url, attempt, error)
            if not retry or attempt == settings.webhook_attempts:
                return Outcome(url, False, attempt, error)
            await asyncio.sleep(backoff(settings.webhook_backoff_seconds, attempt))
        return Outcome(url, False, settings.webhook_attempts, error)
