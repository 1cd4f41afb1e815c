"""What the domain tells the audit interceptor about the rpc it is serving.

The interceptor sees the request and the response, not what the domain learnt on the way: the
facility of the resource it loaded (a caller of several facilities names none), and, for data
reads, which PHI columns the response carries unmasked (a frame does not say which of its columns
are PHI; the query version's declarations do). The interceptor opens an `RpcFacts` per rpc in a
context variable; the domain notes into it. Outside an rpc (workers, direct calls) nothing is open
and noting does nothing.

Tasks started inside the rpc (a batch's widgets) copy the context, so they note into the same
object.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["Disclosure", "RpcFacts", "collecting", "current", "note_data", "note_facility", "note_items"]


@dataclass(frozen=True)
class Disclosure:
    """One frame returned to the caller: whose data it is and which PHI columns it shows unmasked."""

    widget_id: str  # "" for RunQuery
    query_id: str
    query_version: int
    facility_id: str
    row_count: int
    phi_columns: tuple[str, ...]


@dataclass
class RpcFacts:
    # The facility of the first resource the rpc loaded (its subject); "" when it loaded none.
    facility_id: str = ""
    disclosures: list[Disclosure] = field(default_factory=list)
    # A batch rpc's items: the facility of the resource each acted on (a batch clone's sources).
    item_facilities: list[str] = field(default_factory=list)

    def disclosure(self, widget_id: str, query_version: int) -> Disclosure | None:
        for found in self.disclosures:
            if found.widget_id == widget_id and found.query_version == query_version:
                return found
        return None


_facts: ContextVar[RpcFacts | None] = ContextVar("tessera_audit_facts", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[RpcFacts]:
    """Opens the facts of one rpc for the duration of the block."""
    facts = RpcFacts()
    token = _facts.set(facts)
    try:
        yield facts
    finally:
        # A stream closed from elsewhere (garbage collection) may end in another context.
        with contextlib.suppress(ValueError):
            _facts.reset(token)


def current() -> RpcFacts | None:
    return _facts.get()


def note_facility(facility_id: str) -> None:
    """The facility of a resource the rpc loaded; the first one noted is the rpc's."""
    facts = _facts.get()
    if facts is not None and not facts.facility_id and facility_id:
        facts.facility_id = facility_id


def note_items(facilities: list[str]) -> None:
    """The facility of each item of a batch rpc, in request order."""
    facts = _facts.get()
    if facts is not None:
        facts.item_facilities = list(facilities)


def note_data(
    *, widget_id: str, query_id: str, query_version: int, facility_id: str, row_count: int, phi_columns: list[str]
) -> None:
    facts = _facts.get()
    if facts is not None:
        facts.disclosures.append(
            Disclosure(widget_id, query_id, query_version, facility_id, row_count, tuple(phi_columns))
        )
