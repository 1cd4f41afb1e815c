"""Generates gen/openapi/tessera.openapi.{json,yaml} (OpenAPI 3.1) from the protos.

No maintained generator fits this stack (protoc-gen-openapi and grpc-gateway's openapiv2 are Go
programs not packaged here; openapiv2 emits Swagger 2), so this one is small and reads only what
the protos say: every operation from the `google.api.http` rules (additional bindings included)
through the same binding reader the server routes with, schemas from the messages with their
comments, `google.api.field_behavior` REQUIRED / OUTPUT_ONLY, the `buf.validate` rules OpenAPI
can express (lengths, patterns, ranges, item counts, `in`, uuid), proto3 JSON types (int64 as
strings, enums by name, well-known types by their JSON form), the bearer and public-link security
schemes and `google.rpc.Status` as the error schema.

Usage: python scripts/gen_openapi.py IMAGE OUT_DIR   (IMAGE: `buf build -o` output)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

import buf.validate.validate_pb2 as validate_pb2
from server.http.bindings import Binding, bindings

PACKAGE = "dashboard.v1"
FD = descriptor_pb2.FieldDescriptorProto

_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$", "examples": ["1.5s"]},
    "google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated lowerCamelCase field paths."},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}, "required": ["@type"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.Int32Value": {"type": ["integer", "null"], "format": "int32"},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"], "format": "int32", "minimum": 0},
    "google.protobuf.Int64Value": {"type": ["string", "null"], "format": "int64"},
    "google.protobuf.UInt64Value": {"type": ["string", "null"], "format": "int64"},
    "google.protobuf.FloatValue": {"type": ["number", "null"]},
    "google.protobuf.DoubleValue": {"type": ["number", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "contentEncoding": "base64"},
}
_INT32 = {FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32}
_UINT32 = {FD.TYPE_UINT32, FD.TYPE_FIXED32}
_INT64 = {FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64, FD.TYPE_UINT64, FD.TYPE_FIXED64}


class Comments:
    """Leading comments by fully qualified element name, from the image's source info."""

    def __init__(self, image: descriptor_pb2.FileDescriptorSet) -> None:
        self.by_name: dict[str, str] = {}
        for file in image.file:
            if not file.package.startswith(PACKAGE):
                continue
            located = {tuple(loc.path): loc.leading_comments.strip() for loc in file.source_code_info.location}
            prefix = file.package
            for i, message in enumerate(file.message_type):
                self._message(located, (4, i), f"{prefix}.{message.name}", message)
            for i, enum in enumerate(file.enum_type):
                self._enum(located, (5, i), f"{prefix}.{enum.name}", enum)
            for i, service in enumerate(file.service):
                for j, method in enumerate(service.method):
                    self._put(located, (6, i, 2, j), f"{prefix}.{service.name}.{method.name}")

    def _put(self, located: dict[tuple[int, ...], str], path: tuple[int, ...], name: str) -> None:
        text = located.get(path, "")
        if text:
            self.by_name[name] = " ".join(line.strip() for line in text.splitlines())

    def _message(self, located: Any, path: tuple[int, ...], name: str, message: descriptor_pb2.DescriptorProto) -> None:
        self._put(located, path, name)
        for k, field in enumerate(message.field):
            self._put(located, (*path, 2, k), f"{name}.{field.name}")
        for k, nested in enumerate(message.nested_type):
            self._message(located, (*path, 3, k), f"{name}.{nested.name}", nested)
        for k, enum in enumerate(message.enum_type):
            self._enum(located, (*path, 4, k), f"{name}.{enum.name}", enum)

    def _enum(self, located: Any, path: tuple[int, ...], name: str, enum: descriptor_pb2.EnumDescriptorProto) -> None:
        self._put(located, path, name)
        for k, value in enumerate(enum.value):
            self._put(located, (*path, 2, k), f"{name}.{value.name}")

    def get(self, name: str) -> str:
        return self.by_name.get(name, "")


class Generator:
    def __init__(self, comments: Comments) -> None:
        self.comments = comments
        self.schemas: dict[str, Any] = {}

    # --- schemas -----------------------------------------------------------------------------

    def ref(self, descriptor: Descriptor) -> dict[str, Any]:
        if descriptor.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[descriptor.full_name])
        if descriptor.full_name not in self.schemas:
            self.schemas[descriptor.full_name] = {}  # placeholder: recursion ends here
            self.schemas[descriptor.full_name] = self.message(descriptor)
        return {"$ref": f"#/components/schemas/{descriptor.full_name}"}

    def message(self, descriptor: Descriptor, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in descriptor.fields:
            if field.name in skip:
                continue
            schema = self.field(field)
            properties[field.json_name] = schema
            behaviours = _behaviours(field)
            if field_behavior_pb2.REQUIRED in behaviours:
                required.append(field.json_name)
        out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        text = self.comments.get(descriptor.full_name)
        if text:
            out["description"] = text
        if required:
            out["required"] = required
        oneofs = [o for o in descriptor.oneofs if not o.name.startswith("_")]
        if oneofs:
            names = "; ".join(f"{o.name}: one of {', '.join(f.json_name for f in o.fields)}" for o in oneofs)
            out["description"] = (
                out.get("description", "") + f" (At most one field of each group is set: {names}.)"
            ).strip()
        return out

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            value = self.single(
                message.fields_by_name["value"], _rules(field).map.values if _rules(field).HasField("map") else None
            )
            schema: dict[str, Any] = {"type": "object", "additionalProperties": value}
            rules = _rules(field)
            if rules.HasField("map"):
                _copy(schema, rules.map, {"min_pairs": "minProperties", "max_pairs": "maxProperties"})
        elif field.is_repeated:
            rules = _rules(field)
            items = self.single(field, rules.repeated.items if rules.HasField("repeated") else None)
            schema = {"type": "array", "items": items}
            if rules.HasField("repeated"):
                _copy(schema, rules.repeated, {"min_items": "minItems", "max_items": "maxItems"})
                if rules.repeated.unique:
                    schema["uniqueItems"] = True
        else:
            schema = self.single(field, _rules(field))
        text = self.comments.get(field.full_name)
        behaviours = _behaviours(field)
        if field_behavior_pb2.OUTPUT_ONLY in behaviours:
            schema["readOnly"] = True
        if field_behavior_pb2.IMMUTABLE in behaviours:
            text = (text + " Immutable once set.").strip()
        if text:
            schema = {"allOf": [schema], "description": text} if "$ref" in schema else {**schema, "description": text}
        return schema

    def single(self, field: FieldDescriptor, rules: Any) -> dict[str, Any]:
        """The schema of one value of the field, with the rules OpenAPI can express."""
        kind = field.type
        if kind == FD.TYPE_MESSAGE:
            return self.ref(field.message_type)
        if kind == FD.TYPE_ENUM:
            enum = field.enum_type
            names = [v.name for v in enum.values]
            if rules is not None and rules.HasField("enum") and rules.enum.defined_only:
                pass  # names (or numbers) of the enum: what the schema lists already
            if rules is not None and rules.HasField("enum") and rules.enum.not_in:
                excluded = {enum.values_by_number[n].name for n in rules.enum.not_in if n in enum.values_by_number}
                names = [n for n in names if n not in excluded]
            if rules is not None and rules.HasField("enum") and rules.enum.HasField("const"):
                names = [enum.values_by_number[rules.enum.const].name]
            schema = {"type": "string", "enum": names}
            text = self.comments.get(enum.full_name)
            return {**schema, "description": text} if text else schema
        if kind == FD.TYPE_STRING:
            schema = {"type": "string"}
            if rules is not None and rules.HasField("string"):
                r = rules.string
                _copy(schema, r, {"min_len": "minLength", "max_len": "maxLength", "pattern": "pattern"})
                if r.HasField("len"):
                    schema["minLength"] = schema["maxLength"] = r.len
                if r.uuid:
                    schema["format"] = "uuid"
                elif r.email:
                    schema["format"] = "email"
                elif r.uri:
                    schema["format"] = "uri"
                allowed = list(getattr(r, "in"))  # `in` is a Python keyword
                if allowed:
                    schema["enum"] = allowed
            return schema
        if kind == FD.TYPE_BOOL:
            return {"type": "boolean"}
        if kind == FD.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
            schema = {"type": "number"}
            name = "double" if kind == FD.TYPE_DOUBLE else "float"
            if rules is not None and rules.HasField(name):  # type: ignore[arg-type]
                _ranges(schema, getattr(rules, name))
            return schema
        if kind in _INT32 or kind in _UINT32:
            schema = {"type": "integer", "format": "int32"}
            if kind in _UINT32:
                schema["minimum"] = 0
            name = _rule_name(kind)
            if rules is not None and rules.HasField(name):
                _ranges(schema, getattr(rules, name))
            return schema
        if kind in _INT64:
            # proto3 JSON writes 64-bit integers as strings (and accepts numbers).
            schema = {"type": "string", "format": "int64", "pattern": r"^-?[0-9]+$"}
            name = _rule_name(kind)
            if rules is not None and rules.HasField(name):
                r = getattr(rules, name)
                bounds = [f"{k} {getattr(r, k)}" for k in ("gte", "gt", "lte", "lt") if r.HasField(k)]
                if bounds:
                    schema["description"] = "Bounds: " + ", ".join(bounds) + "."
            return schema
        raise ValueError(f"unhandled field type {kind} of {field.full_name}")

    # --- operations --------------------------------------------------------------------------

    def operation(self, binding: Binding, operation_id: str) -> dict[str, Any]:
        method = binding.method
        request = method.input_type
        text = self.comments.get(method.full_name)
        op: dict[str, Any] = {
            "operationId": operation_id,
            "tags": [method.containing_service.name],
            "summary": text.split(". ")[0].rstrip(".") if text else method.name,
            "description": text or method.name,
        }
        params: list[dict[str, Any]] = []
        for variable in binding.variables:
            field = _field_at(request, variable)
            description = self.comments.get(field.full_name) or variable
            params.append(
                {"name": _param_name(variable), "in": "path", "required": True,
                 "schema": self.single(field, _rules(field)),
                 "description": description if "." not in variable else f"`{variable}`: {description}"}
            )  # fmt: skip
        top = {v.split(".")[0] for v in binding.variables}
        if binding.body == "*":
            schema = self.message(request, skip=frozenset(v for v in binding.variables if "." not in v))
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        else:
            if binding.body:
                body_field = request.fields_by_name[binding.body]
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": self.ref(body_field.message_type)}},
                }
                top.add(binding.body)
            for name, field in _query_fields(request, "", frozenset(top), ()):
                schema = self.field(field) if field.is_repeated else self.single(field, _rules(field))
                schema.pop("readOnly", None)
                description = schema.pop("description", None) or self.comments.get(field.full_name)
                param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
                if description:
                    param["description"] = description
                if field.is_repeated:
                    param["explode"] = True
                    param["style"] = "form"
                params.append(param)
        if params:
            op["parameters"] = params
        op["responses"] = self.responses(binding)
        return op

    def responses(self, binding: Binding) -> dict[str, Any]:
        status_ref = {"$ref": "#/components/schemas/google.rpc.Status"}
        error = {
            "description": "An error: a google.rpc.Status with its details.",
            "content": {"application/json": {"schema": status_ref}},
        }
        out: dict[str, Any] = {}
        name = binding.method.name
        if name == "DownloadExport":
            out["200"] = {
                "description": "The export file (PDF or PNG). Send `Range: bytes=N-` to resume (206).",
                "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}},
                            "image/png": {"schema": {"type": "string", "format": "binary"}}},
            }  # fmt: skip
            binary = {"schema": {"type": "string", "format": "binary"}}
            out["206"] = {"description": "Part of the file (a Range request).", "content": {"application/pdf": binary}}
        elif binding.streaming:
            item = self.ref(binding.method.output_type)
            out["200"] = {
                "description": "A stream: Server-Sent Events with `Accept: text/event-stream` (the revision as the "
                "event id; resume with Last-Event-ID), else newline-delimited JSON objects `{\"result\": ...}`.",
                "content": {"text/event-stream": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "object", "properties": {"result": item}}}},
            }  # fmt: skip
        else:
            out["200"] = {
                "description": "OK",
                "headers": {"X-Tessera-Lsn": LSN_HEADER},
                "content": {"application/json": {"schema": self.ref(binding.method.output_type)}},
            }
        for code, text in (("400", "Invalid argument or failed precondition"), ("401", "Unauthenticated"),
                           ("403", "Permission denied"), ("404", "Not found (or not visible to the caller)"),
                           ("409", "Conflict: already exists or aborted (stale etag)"), ("429", "Resource exhausted"),
                           ("503", "Unavailable: retry")):  # fmt: skip
            out[code] = {**error, "description": text}
        out["429"]["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
        out["default"] = error
        return out


LSN_HEADER = {
    "description": "With a read replica deployed: the primary's WAL position after this call's write. Send it "
    "back as the X-Tessera-Lsn request header on later calls (to any server) to read your own write.",
    "schema": {"type": "string", "examples": ["0/3000148"]},
}
RETRY_AFTER_HEADER = {
    "description": "Whole seconds to wait before retrying (the RetryInfo detail has the exact delay).",
    "schema": {"type": "integer", "minimum": 1},
}


def _param_name(variable: str) -> str:
    """`dashboard.id` -> `id`: OpenAPI treats paths differing only in parameter names as one,
    so `/dashboards/{dashboard.id}` (PUT) and `/dashboards/{id}` (GET) must share a name."""
    return variable.rsplit(".", 1)[-1]


def _openapi_path(binding: Binding) -> str:
    path = binding.template
    for variable in binding.variables:
        path = path.replace("{" + variable + "}", "{" + _param_name(variable) + "}")
    return path


def _behaviours(field: FieldDescriptor) -> list[int]:
    options = field.GetOptions()
    return list(options.Extensions[field_behavior_pb2.field_behavior])


def _rules(field: FieldDescriptor) -> Any:
    options = field.GetOptions()
    return options.Extensions[validate_pb2.field]  # type: ignore[index]


def _rule_name(kind: int) -> str:
    return {
        FD.TYPE_INT32: "int32", FD.TYPE_SINT32: "sint32", FD.TYPE_SFIXED32: "sfixed32", FD.TYPE_UINT32: "uint32",
        FD.TYPE_FIXED32: "fixed32", FD.TYPE_INT64: "int64", FD.TYPE_SINT64: "sint64", FD.TYPE_SFIXED64: "sfixed64",
        FD.TYPE_UINT64: "uint64", FD.TYPE_FIXED64: "fixed64",
    }[kind]  # fmt: skip


def _copy(schema: dict[str, Any], rules: Any, names: dict[str, str]) -> None:
    for proto_name, openapi_name in names.items():
        if rules.HasField(proto_name):
            schema[openapi_name] = getattr(rules, proto_name)


def _ranges(schema: dict[str, Any], rules: Any) -> None:
    _copy(schema, rules, {"gte": "minimum", "lte": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"})
    values = list(getattr(rules, "in"))
    if values:
        schema["enum"] = values


def _field_at(descriptor: Descriptor, path: str) -> FieldDescriptor:
    *parents, last = path.split(".")
    for part in parents:
        descriptor = descriptor.fields_by_name[part].message_type
    return descriptor.fields_by_name[last]


def _query_fields(
    descriptor: Descriptor, prefix: str, skip: frozenset[str], seen: tuple[str, ...]
) -> list[tuple[str, FieldDescriptor]]:
    """The fields a query string can set (grpc-gateway: scalars, enums, repeated of those,
    well-known string types; nested messages as dotted names), by lowerCamelCase path."""
    out: list[tuple[str, FieldDescriptor]] = []
    for field in descriptor.fields:
        if not prefix and field.name in skip:
            continue
        name = prefix + field.json_name
        message = field.message_type
        if message is None:
            out.append((name, field))
        elif message.GetOptions().map_entry:
            continue
        elif message.full_name in _WELL_KNOWN and message.full_name not in (
            "google.protobuf.Empty", "google.protobuf.Struct", "google.protobuf.Value",
            "google.protobuf.ListValue", "google.protobuf.Any",
        ):  # fmt: skip
            out.append((name, field))
        elif not field.is_repeated and message.full_name not in seen and len(seen) < 3:
            out.extend(_query_fields(message, name + ".", frozenset(), (*seen, message.full_name)))
    return out


def document(image: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    generator = Generator(Comments(image))
    paths: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    for binding in bindings():
        counts[binding.rpc] = counts.get(binding.rpc, 0) + 1
        suffix = "" if counts[binding.rpc] == 1 else f"_{counts[binding.rpc]}"
        operation_id = f"{binding.method.containing_service.name}_{binding.method.name}{suffix}"
        paths.setdefault(_openapi_path(binding), {})[binding.verb.lower()] = generator.operation(binding, operation_id)
    from google.rpc import status_pb2

    generator.ref(status_pb2.Status.DESCRIPTOR)
    status = generator.schemas["google.rpc.Status"]
    status["properties"]["details"]["items"] = {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
        "description": "google.rpc.ErrorInfo, BadRequest, PreconditionFailure or RetryInfo, by `@type`.",
    }
    status["description"] = "The error body of every failed call (proto3 JSON of google.rpc.Status)."
    services = sorted({b.method.containing_service for b in bindings()}, key=lambda s: s.name)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tessera API",
            "version": "v1",
            "description": "The HTTP/JSON face of Tessera's gRPC services (dashboard.v1), generated from the "
            "protos' google.api.http rules. Send `Authorization: Bearer <JWT>` (or a public link token in "
            "`x-tessera-link`). Errors are google.rpc.Status objects with details; every response carries "
            "X-Correlation-Id. With a read replica, a write answers X-Tessera-Lsn: send it back as the "
            "X-Tessera-Lsn request header to read your own write from any server. A 429 carries Retry-After.",
            "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
        },
        "servers": [{"url": "/", "description": "This server"}],
        "security": [{"bearerAuth": []}, {"publicLink": []}],
        "tags": [{"name": s.name, "description": generator.comments.get(s.full_name) or s.name} for s in services],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "publicLink": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-tessera-link",
                    "description": "A public link's token: reads one published dashboard.",
                },
            },
            "schemas": dict(sorted(generator.schemas.items())),
        },
    }


def main() -> None:
    image = descriptor_pb2.FileDescriptorSet.FromString(Path(sys.argv[1]).read_bytes())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    doc = document(image)
    (out / "tessera.openapi.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    (out / "tessera.openapi.yaml").write_text(
        yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=120)
    )


class _PlainDumper(yaml.SafeDumper):
    """No anchors and aliases: shared objects are written out where they are used."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


if __name__ == "__main__":
    main()
