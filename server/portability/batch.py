"""BatchCloneDashboards: several clones, all or nothing.

Every item is first planned exactly as CloneDashboard plans it (read access to the source,
the right to copy into the target: the first refusal answers for the batch, naming its item),
then checked against its target facility, every item's problems reported together at
`requests[i].*` before anything is written. The copies are written in one transaction. Their
ids are chosen up front, so a drill-through from one dashboard of the batch to another copied
into the same facility can open that copy.

The batch's request_id is remembered once per copy (method `BatchCloneDashboards[i]`, the
whole batch's hash), all in the transaction that writes them: a retry finds every copy, and
the same id with another batch is refused at its first item."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from dashboard.v1 import dashboard_pb2
from server import idempotency
from server.audit import facts as audit_facts
from server.auth.principal import Principal
from server.errors import FieldViolation, NotFound, PermissionDenied, ViolationCollector
from server.portability.service import BatchLink, Outcome, Plan, PortabilityDomain, lock_titles

D = dashboard_pb2
METHOD = "BatchCloneDashboards"
Answer = D.ImportDashboardResponse | uuid.UUID  # a copy made now, or the id of an earlier one


class BatchCloner:
    def __init__(self, portability: PortabilityDomain) -> None:
        self._portability = portability

    async def clone_many(
        self, principal: Principal, request: D.BatchCloneDashboardsRequest, digest: bytes
    ) -> list[D.ImportDashboardResponse]:
        items = list(request.requests)
        plans = await self._plans(principal, items)
        audit_facts.note_items([plan.source[1] for plan in plans])
        early = _batch_problems(items, plans)
        built: list[str] = []  # views made on the data source, dropped again if the batch fails
        written: list[D.ImportDashboardResponse] = []

        async def create(conn: AsyncConnection, _: None, i: int) -> tuple[uuid.UUID, Answer]:
            if not written:  # the first item's turn writes the whole batch
                written.extend(await self._write_all(conn, principal, plans, early, built))
            return uuid.UUID(written[i].dashboard.id), written[i]

        async def existing(dashboard_id: uuid.UUID) -> Answer:
            return dashboard_id  # read back below, with its item's plan

        async def drop_views() -> None:
            await self._portability.drop_views(built)

        keys = [
            idempotency.RequestKey(principal.subject, f"{METHOD}[{i}]", request.request_id, digest)
            for i in range(len(items))
        ]
        done = await idempotency.create_once(
            self._portability.db, keys, create, existing, prepare=idempotency.nothing_to_prepare, abandon=drop_views
        )
        return [
            answer
            if isinstance(answer, D.ImportDashboardResponse)
            else await self._portability.replay(principal, plans[i], answer)
            for i, answer in enumerate(done)
        ]

    async def _plans(self, principal: Principal, items: Sequence[D.CloneDashboardRequest]) -> list[Plan]:
        """Each item's clone plan, with the ids of the copies and the batch's links among them."""
        plans: list[Plan] = []
        async with self._portability.db.read() as conn:
            for i, item in enumerate(items):
                try:
                    plans.append(await self._portability.clone_plan(conn, principal, item))
                except (NotFound, PermissionDenied) as refused:
                    refused.metadata["item"] = f"requests[{i}]"  # which item; reveals nothing more
                    raise
        copies = [uuid.uuid4() for _ in plans]
        links: dict[str, dict[str, BatchLink]] = {}  # target facility -> source id -> its copy
        for i, plan in enumerate(plans):
            filters = frozenset(f.name for f in plan.document.dashboard.filters)
            links.setdefault(plan.facility, {}).setdefault(
                plan.source[0], BatchLink(copies[i], filters, f"requests[{i}]")
            )
        claimed: dict[str, dict[str, str]] = {facility: {} for facility in links}
        return [
            dataclasses.replace(
                plan,
                new_id=copies[i],
                batch_links={s: link for s, link in links[plan.facility].items() if s != plan.source[0]},
                claimed_titles=claimed[plan.facility],
                batch_item=f"requests[{i}]",
            )
            for i, plan in enumerate(plans)
        ]

    async def _write_all(
        self,
        conn: AsyncConnection,
        principal: Principal,
        plans: Sequence[Plan],
        early: Sequence[FieldViolation],
        built: list[str],
    ) -> list[D.ImportDashboardResponse]:
        # Every target's title lock first, in one order: two batches never wait on each other.
        for facility in sorted({plan.facility for plan in plans}):
            await lock_titles(conn, facility)
        problems = ViolationCollector(list(early))
        outcomes: list[Outcome] = []
        for i, plan in enumerate(plans):
            outcome, found = await self._portability.check_and_resolve(conn, principal, plan, built)
            outcomes.append(outcome)
            problems.violations += [
                FieldViolation(f"requests[{i}].{v.field}", v.description, v.reason) for v in found.violations
            ]
        problems.raise_if_any("the batch cannot be cloned")
        return [
            await self._portability.write(conn, principal, plan, outcome)
            for plan, outcome in zip(plans, outcomes, strict=True)
        ]


def _batch_problems(items: Sequence[D.CloneDashboardRequest], plans: Sequence[Plan]) -> list[FieldViolation]:
    """What is wrong with the batch as a batch: an item's own request_id, and a source copied
    twice into the same facility."""
    problems = ViolationCollector()
    first: dict[tuple[str, str], int] = {}
    for i, (item, plan) in enumerate(zip(items, plans, strict=True)):
        if item.request_id:
            problems.add(
                f"requests[{i}].request_id",
                "an item of a batch has no request_id of its own: set the batch's request_id",
                "BATCH_ITEM_REQUEST_ID",
            )
        key = (plan.source[0], plan.facility)
        if key in first:
            problems.add(
                f"requests[{i}].id",
                f"requests[{first[key]}] already copies dashboard {plan.source[0]} into facility {plan.facility!r}",
                "DUPLICATE_CLONE",
            )
        first.setdefault(key, i)
    return problems.violations


__all__ = ["METHOD", "BatchCloner"]
