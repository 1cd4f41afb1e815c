"""request_id idempotency for creates (AIP-155): a retry with the same id returns the first
result; the same id with a different request is refused.

`create_once` is the whole sequence every create runs: look the request ids up, create what is
new in the same transaction, remember the ids with it, and when a concurrent twin won the race
(a unique violation) return the twin's resources."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.engine import Database
from server.db.schema import idempotency_keys
from server.errors import AlreadyExists

P = TypeVar("P")
T = TypeVar("T")


@dataclass(frozen=True)
class RequestKey:
    """One create as idempotency knows it; an empty request_id means the caller sent none."""

    actor: str
    method: str
    request_id: str
    digest: bytes


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


async def nothing_to_prepare(conn: AsyncConnection) -> None:
    return None


async def create_once(
    db: Database,
    keys: Sequence[RequestKey],
    create: Callable[[AsyncConnection, P, int], Awaitable[tuple[uuid.UUID, T]]],
    existing: Callable[[uuid.UUID], Awaitable[T]],
    *,
    prepare: Callable[[AsyncConnection], Awaitable[P]],
    abandon: Callable[[], Awaitable[None]] | None = None,
) -> list[T]:
    """Creates keys[i] with `create(conn, prepared, i)` -> (resource id, result), all in one
    transaction, unless its request id was used before: then (after the transaction) the earlier
    resource, read with `existing(id)`. `prepare(conn)` runs first in the transaction (a lock to
    look the ids up under, say); `abandon()` undoes what `create` did outside the transaction
    when the transaction fails. All or none: a twin that won the race for any key answers for all
    (and a failure that was not such a race is raised)."""
    found: list[uuid.UUID | None] = []
    created: dict[int, T] = {}
    try:
        async with db.transaction() as conn:
            prepared = await prepare(conn)
            for i, key in enumerate(keys):
                hit = await find(conn, key.actor, key.method, key.request_id, key.digest) if key.request_id else None
                found.append(hit)
                if hit is None:
                    resource_id, created[i] = await create(conn, prepared, i)
                    if key.request_id:
                        await remember(conn, key.actor, key.method, key.request_id, key.digest, resource_id)
    except IntegrityError:
        if abandon is not None:
            await abandon()
        winners = [await race_winner(db, key.actor, key.method, key.request_id, key.digest) for key in keys]
        if any(winner is None for winner in winners):
            raise
        return [await existing(winner) for winner in winners if winner is not None]
    except BaseException:
        if abandon is not None:
            await abandon()
        raise
    return [created[i] if hit is None else await existing(hit) for i, hit in enumerate(found)]
