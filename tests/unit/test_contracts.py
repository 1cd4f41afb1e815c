"""The contract's house rules, checked on the compiled descriptors: REST annotations on every
rpc, AIP pagination and idempotency fields, enum zero values, field behaviours."""

from __future__ import annotations

from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf.descriptor import Descriptor, FileDescriptor

from dashboard.v1 import (
    alert_pb2,
    common_pb2,
    dashboard_pb2,
    export_pb2,
    query_pb2,
    report_pb2,
    search_pb2,
    share_pb2,
    widget_pb2,
)

FILES: list[FileDescriptor] = [
    m.DESCRIPTOR
    for m in (
        common_pb2,
        dashboard_pb2,
        widget_pb2,
        query_pb2,
        export_pb2,
        share_pb2,
        report_pb2,
        alert_pb2,
        search_pb2,
    )
]
SERVICES = {s.name: s for f in FILES for s in f.services_by_name.values()}


def _messages() -> list[Descriptor]:
    out: list[Descriptor] = []

    def walk(desc: Descriptor) -> None:
        out.append(desc)
        for nested in desc.nested_types:
            walk(nested)

    for f in FILES:
        for desc in f.message_types_by_name.values():
            walk(desc)
    return out


def test_the_services_exist() -> None:
    assert set(SERVICES) >= {"DashboardService", "WidgetService", "QueryService", "ExportService", "ShareService"}
    assert {"ReportService", "AlertService", "SearchService"} <= set(SERVICES)


def test_every_rpc_has_an_http_rule_under_api_v1_dashboard() -> None:
    for service in SERVICES.values():
        for method in service.methods:
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            pattern = rule.WhichOneof("pattern")
            assert pattern, f"{service.name}.{method.name} has no google.api.http"
            assert getattr(rule, pattern).startswith("/api/v1/dashboard/"), method.full_name


def test_the_original_rest_paths_survive() -> None:
    paths = set()
    for service in SERVICES.values():
        for method in service.methods:
            rule = method.GetOptions().Extensions[annotations_pb2.http]
            for r in (rule, *rule.additional_bindings):
                kind = r.WhichOneof("pattern")
                paths.add((kind.upper(), getattr(r, kind)))
    base = "/api/v1/dashboard"
    for expected in [
        ("POST", f"{base}/dashboards"),
        ("GET", f"{base}/dashboards"),
        ("GET", f"{base}/dashboards/{{id}}"),
        ("PUT", f"{base}/dashboards/{{dashboard.id}}"),
        ("DELETE", f"{base}/dashboards/{{id}}"),
        ("POST", f"{base}/dashboards/{{id}}/publish"),
        ("POST", f"{base}/widgets"),
        ("GET", f"{base}/widgets/{{id}}"),
        ("PUT", f"{base}/widgets/{{widget.id}}"),
        ("DELETE", f"{base}/widgets/{{id}}"),
        ("POST", f"{base}/widgets/data"),
        ("POST", f"{base}/queries"),
        ("GET", f"{base}/queries"),
        ("GET", f"{base}/queries/{{id}}"),
        ("POST", f"{base}/exports"),
        ("GET", f"{base}/exports/{{id}}"),
        ("GET", f"{base}/dashboards/{{dashboard_id}}/exports"),
        ("POST", f"{base}/dashboards/{{dashboard_id}}/share"),
        ("DELETE", f"{base}/dashboards/{{dashboard_id}}/share/{{user_id}}"),
    ]:
        assert expected in paths, expected


def test_lists_paginate_the_aip_way() -> None:
    for service in SERVICES.values():
        for method in service.methods:
            if not method.name.startswith("List"):
                continue
            fields = method.input_type.fields_by_name
            assert {"page_size", "page_token"} <= set(fields), method.full_name
            assert "next_page_token" in method.output_type.fields_by_name, method.full_name


def test_creates_take_a_request_id() -> None:
    for service in SERVICES.values():
        for method in service.methods:
            if method.name.startswith("Create") and method.name != "CreatePublicLink":
                assert "request_id" in method.input_type.fields_by_name, method.full_name


def test_updates_take_a_field_mask_and_resources_carry_etags() -> None:
    for service in SERVICES.values():
        for method in service.methods:
            if method.name.startswith("Update"):
                fields = method.input_type.fields_by_name
                assert fields["update_mask"].message_type.full_name == "google.protobuf.FieldMask"
                resource = next(f for f in method.input_type.fields if f.name != "update_mask").message_type
                assert "etag" in resource.fields_by_name, resource.full_name


def test_every_enum_starts_with_unspecified() -> None:
    for f in FILES:
        enums = list(f.enum_types_by_name.values())
        for desc in _messages():
            enums += list(desc.enum_types)
        for enum in enums:
            zero = enum.values_by_number[0]
            assert zero.name.endswith("_UNSPECIFIED"), enum.full_name


def test_ids_and_times_are_output_only() -> None:
    for desc in _messages():
        for name in ("id", "create_time", "update_time"):
            field = desc.fields_by_name.get(name)
            if field is None or desc.name.endswith("Request") or desc.name == "AuditEvent":
                continue
            behaviours = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
            assert field_behavior_pb2.OUTPUT_ONLY in behaviours, f"{desc.full_name}.{name}"


def test_long_work_streams_and_can_resume() -> None:
    for name in ("WatchMaterializationJob", "WatchExport"):
        method = next(m for s in SERVICES.values() for m in s.methods if m.name == name)
        assert method.server_streaming
        assert "since_revision" in method.input_type.fields_by_name
        assert "heartbeat" in method.output_type.fields_by_name
