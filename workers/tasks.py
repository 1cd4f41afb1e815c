"""Celery tasks. Materialization and export tasks arrive with their features; maintenance
keeps the tables the server writes from growing without bound."""

from __future__ import annotations

import logging

from celery import shared_task
from sqlalchemy import delete, func, text

from server.db.schema import idempotency_keys
from workers import resources

log = logging.getLogger("tessera.workers")

IDEMPOTENCY_RETENTION = text("interval '24 hours'")


@shared_task(
    name="tessera.maintenance.cleanup_idempotency_keys", autoretry_for=(OSError,), retry_backoff=True, max_retries=5
)
def cleanup_idempotency_keys() -> int:
    """request_id keys are honoured for 24 hours (AIP-155 leaves the window to the service)."""
    with resources.engine().begin() as conn:
        result = conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < func.now() - IDEMPOTENCY_RETENTION)
        )
    log.info("cleaned idempotency keys", extra={"deleted": result.rowcount})
    return int(result.rowcount or 0)
