"""request_id idempotency for creates (AIP-155): a retry with the same id returns the first
result; the same id with a different request is refused."""

from __future__ import annotations

import hashlib
import uuid

from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.engine import Database
from server.db.schema import idempotency_keys
from server.errors import AlreadyExists


def request_hash(request: Message) -> bytes:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()


async def find(conn: AsyncConnection, actor: str, method: str, request_id: str, digest: bytes) -> uuid.UUID | None:
    row = (
        await conn.execute(
            select(idempotency_keys.c.resource_id, idempotency_keys.c.request_hash).where(
                idempotency_keys.c.actor == actor,
                idempotency_keys.c.method == method,
                idempotency_keys.c.request_id == uuid.UUID(request_id),
            )
        )
    ).first()
    if row is None:
        return None
    if bytes(row.request_hash) != digest:
        raise AlreadyExists(
            "request_id was already used for a different request",
            reason="REQUEST_ID_REUSED",
            metadata={"request_id": request_id},
        )
    return uuid.UUID(str(row.resource_id))


async def remember(
    conn: AsyncConnection, actor: str, method: str, request_id: str, digest: bytes, resource_id: uuid.UUID
) -> None:
    # A concurrent twin inserting the same key makes this fail and its whole transaction roll
    # back; the caller then finds the winner's resource.
    await conn.execute(
        insert(idempotency_keys).values(
            actor=actor, method=method, request_id=uuid.UUID(request_id), request_hash=digest, resource_id=resource_id
        )
    )


async def race_winner(db: Database, actor: str, method: str, request_id: str, digest: bytes) -> uuid.UUID | None:
    """After a create failed on a constraint: the resource that a concurrent twin with the same
    request_id created (it won the primary key), or None when the failure was something else."""
    if not request_id:
        return None
    async with db.read() as conn:
        return await find(conn, actor, method, request_id, digest)
