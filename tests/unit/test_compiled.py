"""Statements compiled once (server/db/compiled.py) and the bounded memo (server/memo.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import Text, bindparam, select
from sqlalchemy.dialects.postgresql.psycopg import PGDialectAsync_psycopg

from server.access.policy import visibility_params, visibility_shape, visible_dashboards
from server.auth.principal import Principal, Role
from server.dashboards.listing import ListShape, ListStatements
from server.db.compiled import Compiled
from server.db.schema import dashboards
from server.memo import Memo

DIALECT = PGDialectAsync_psycopg()


def test_named_parameters_are_given_per_call_and_written_values_kept():
    statement = select(dashboards.c.id).where(
        dashboards.c.owner_id == bindparam("owner", type_=Text), dashboards.c.visibility == 2
    )
    compiled = Compiled(statement, DIALECT)
    assert "%(owner)s" in compiled.sql
    params = compiled.params({"owner": "u-1"})
    assert params["owner"] == "u-1" and 2 in params.values()
    with pytest.raises(ValueError, match="owner"):
        compiled.params({})


def test_an_in_list_is_refused_for_one_text_serves_every_call():
    with pytest.raises(ValueError, match="ANY"):
        Compiled(select(dashboards.c.id).where(dashboards.c.owner_id.in_(["a", "b"])), DIALECT)


@pytest.mark.parametrize(
    "principal",
    [
        Principal("u", Role.VIEWER, frozenset({"f1"})),
        Principal("u", Role.EDITOR, frozenset({"f1", "f2"})),
        Principal("u", Role.ADMIN, frozenset({"f1"})),
        Principal("u", Role.VIEWER, frozenset(), link_id="l", link_dashboard_id="00000000-0000-0000-0000-000000000001"),
    ],
)
def test_the_visibility_template_takes_exactly_the_callers_values(principal):
    compiled = Compiled(select(dashboards.c.id).where(visible_dashboards(principal, template=True)), DIALECT)
    values = visibility_params(principal)
    assert set(compiled.params(values)) >= set(values)
    # The values written in are the shape's alone: another caller of the same shape runs the same text.
    twin = Principal(
        "someone-else",
        principal.role,
        frozenset(f"x{f}" for f in principal.facilities),
        link_id=principal.link_id,
        link_dashboard_id="00000000-0000-0000-0000-000000000002" if principal.is_link else None,
    )
    assert visibility_shape(twin) == visibility_shape(principal)
    again = Compiled(select(dashboards.c.id).where(visible_dashboards(twin, template=True)), DIALECT)
    assert again.sql == compiled.sql and again.params(visibility_params(twin)) != compiled.params(values)


def test_one_facility_is_an_equality_and_several_are_any():
    one = Compiled(
        select(dashboards.c.id).where(visible_dashboards(Principal("u", Role.EDITOR, frozenset({"f"})), template=True)),
        DIALECT,
    )
    several = Compiled(
        select(dashboards.c.id).where(
            visible_dashboards(Principal("u", Role.EDITOR, frozenset({"f", "g"})), template=True)
        ),
        DIALECT,
    )
    assert "dashboards.facility_id = %(visible_facility)s" in one.sql
    assert "dashboards.facility_id = ANY (%(visible_facilities)s" in several.sql


def test_list_statements_are_compiled_once_per_shape():
    statements = ListStatements(DIALECT)
    principal = Principal("u", Role.EDITOR, frozenset({"f"}))
    shape = ListShape(visibility_shape(principal), "", tags=True, after=True)
    first = statements.of(shape, principal)
    assert statements.of(ListShape(visibility_shape(principal), "", tags=True, after=True), principal) is first
    assert statements.of(ListShape(visibility_shape(principal), "title"), principal) is not first
    assert {"tags", "after_key", "after_id", "limit"} <= first._named


def test_the_memo_keeps_the_most_recently_used():
    memo: Memo[str, int] = Memo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # "a" now the most recent
    memo.put("c", 3)
    assert memo.get("b") is None and memo.get("a") == 1 and memo.get("c") == 3 and len(memo) == 2
    memo.clear()
    assert len(memo) == 0


def test_a_weighed_memo_keeps_at_most_its_weight():
    memo: Memo[str, bytes] = Memo(10, weigh=len, max_weight=10)
    memo.put("a", b"1234")
    memo.put("b", b"5678")
    assert memo.weight == 8
    memo.put("c", b"90ab")  # 12 > 10: the least recently used goes
    assert memo.get("a") is None and memo.weight == 8 and len(memo) == 2
    memo.put("b", b"x")  # replacing a value re-weighs it
    assert memo.weight == 5
    memo.put("big", b"y" * 11)  # heavier than the whole memo: nothing of it stays
    assert len(memo) == 0 and memo.weight == 0
