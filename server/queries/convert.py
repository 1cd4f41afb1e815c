"""Query rows (head + version) <-> dashboard.v1.Query and QueryVersion, in one place."""

from __future__ import annotations

from typing import Any

from google.protobuf import duration_pb2

from dashboard.v1 import query_pb2
from server.protojson import etag, from_json, to_json, ts

# Fields whose change makes a new immutable version (they change what the query returns).
VERSIONED = ("sql", "parameters", "options", "sensitive_columns", "view_key_columns")
# Fields that are the query's metadata (no new version).
METADATA = ("name", "description", "tags", "template")


def version_values(query: query_pb2.Query) -> dict[str, Any]:
    options = to_json(query.options)
    if query.view_key_columns:
        options["view_key_columns"] = list(query.view_key_columns)
    return {
        "sql": query.sql,
        "parameters": [to_json(p) for p in query.parameters],
        "options": options,
        "sensitive_columns": [to_json(c) for c in query.sensitive_columns],
    }


def query_from_rows(head: Any, version: Any) -> query_pb2.Query:
    options = dict(version.options or {})
    key_columns = options.pop("view_key_columns", [])
    query = query_pb2.Query(
        id=str(head.id),
        facility_id=head.facility_id,
        owner_id=head.owner_id,
        name=head.name,
        description=head.description,
        kind=head.kind,
        sql=version.sql,
        parameters=[from_json(p, query_pb2.ParameterSpec()) for p in version.parameters or []],
        options=from_json(options, query_pb2.QueryOptions()),
        sensitive_columns=[from_json(c, query_pb2.SensitiveColumn()) for c in version.sensitive_columns or []],
        template=head.is_template,
        tags=list(head.tags),
        version=version.version,
        view_name=head.view_name or "",
        view_key_columns=key_columns,
        etag=etag(head.id, head.version, head.updated_at.isoformat()),
    )
    for field, value in (
        ("refresh_time", head.refresh_time),
        ("create_time", head.created_at),
        ("update_time", head.updated_at),
    ):
        stamp = ts(value)
        if stamp is not None:
            getattr(query, field).CopyFrom(stamp)
    return query


def query_version_from_rows(head: Any, version: Any) -> query_pb2.QueryVersion:
    out = query_pb2.QueryVersion(
        query_id=str(head.id),
        version=version.version,
        snapshot=query_from_rows(head, version),
        author_id=version.author_id,
    )
    out.snapshot.ClearField("etag")
    out.create_time.FromDatetime(version.created_at)
    return out


def seconds(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9
