"""What the audit log calls "PHI unmasked": a column the query version declares sensitive (matched
as masking matches it) that left the server unmasked, and the per-rpc facts that carry it from
the domain to the interceptor."""

from __future__ import annotations

import asyncio

from dashboard.v1 import common_pb2, query_pb2
from server.audit import facts
from server.queries.frame import build_frame
from server.queries.masking import mask_frame, unmasked_phi_columns

REDACT = query_pb2.MASKING_STRATEGY_REDACT


def frame(*names: str) -> common_pb2.DataFrame:
    rows = [tuple(f"{n}-{i}" for n in names) for i in range(2)]
    return build_frame([(n, 25, "text") for n in names], rows, False)  # 25: the text type oid


def test_declared_columns_present_and_unmasked_count() -> None:
    data = frame("patient_name", "unit", "mrn")
    assert unmasked_phi_columns(data, ["patient_name", "mrn"]) == ["patient_name", "mrn"]


def test_no_declaration_no_phi() -> None:
    assert unmasked_phi_columns(frame("patient_name", "unit"), []) == []


def test_declared_but_not_selected_is_not_phi_returned() -> None:
    assert unmasked_phi_columns(frame("unit", "n"), ["patient_name"]) == []


def test_masked_columns_are_not_phi_unmasked() -> None:
    masked = mask_frame(frame("patient_name", "unit"), {"patient_name": REDACT}, b"k")
    assert unmasked_phi_columns(masked, ["patient_name"]) == []


def test_names_match_as_masking_matches_them() -> None:
    # Masking folds case so a declaration's capitalisation never lets PHI through; the audit
    # log must call the same columns PHI.
    data = frame("Patient_Name", "unit")
    assert unmasked_phi_columns(data, ["patient_name"]) == ["Patient_Name"]
    assert mask_frame(data, {"patient_name": REDACT}, b"k").columns[0].masked


def test_noting_outside_an_rpc_does_nothing() -> None:
    assert facts.current() is None
    facts.note_facility("f")
    facts.note_data(widget_id="w", query_id="q", query_version=1, facility_id="f", row_count=1, phi_columns=[])
    assert facts.current() is None


def test_facts_are_per_rpc_and_shared_with_its_tasks() -> None:
    async def one_widget(widget_id: str) -> None:
        facts.note_facility(f"fac-{widget_id}")
        facts.note_data(
            widget_id=widget_id, query_id="q", query_version=2, facility_id="f", row_count=3, phi_columns=["x"]
        )

    async def rpc() -> facts.RpcFacts:
        with facts.collecting() as collected:
            async with asyncio.TaskGroup() as group:  # as a batch computes its widgets
                for widget_id in ("a", "b", "c"):
                    group.create_task(one_widget(widget_id))
            assert facts.current() is collected
        assert facts.current() is None
        return collected

    collected = asyncio.run(rpc())
    assert sorted(d.widget_id for d in collected.disclosures) == ["a", "b", "c"]
    assert collected.facility_id.startswith("fac-")  # the first noted wins
    found = collected.disclosure("b", 2)
    assert found is not None and found.phi_columns == ("x",) and found.row_count == 3
    assert collected.disclosure("b", 1) is None and collected.disclosure("z", 2) is None
