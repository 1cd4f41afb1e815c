"""Generates gen/schema/dashboard-document.v1.json: the JSON Schema (2020-12) of the portable
dashboard document (dashboard.v1.DashboardDocument in its proto3 JSON form), from the same protos
and with the same field schemas as the OpenAPI document (gen_openapi.Generator: comments,
buf.validate rules, proto3 JSON types), so the two cannot disagree.

Usage: python scripts/gen_document_schema.py IMAGE OUT_DIR   (IMAGE: `buf build -o` output)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

from dashboard.v1 import dashboard_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_openapi import Comments, Generator

SCHEMA_VERSION = "tessera.dashboard/v1"
FILE_NAME = "dashboard-document.v1.json"


def _relink(node: Any) -> Any:
    """OpenAPI's component references as this document's own $defs."""
    if isinstance(node, dict):
        return {
            k: (v.replace("#/components/schemas/", "#/$defs/") if k == "$ref" else _relink(v)) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_relink(v) for v in node]
    return node


def schema(image: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    generator = Generator(Comments(image))
    root_name = dashboard_pb2.DashboardDocument.DESCRIPTOR.full_name
    generator.ref(dashboard_pb2.DashboardDocument.DESCRIPTOR)
    defs = _relink(dict(sorted(generator.schemas.items())))
    root = defs.pop(root_name)
    root["properties"]["schemaVersion"] = {"const": SCHEMA_VERSION, "description": "The document format's version."}
    root["required"] = ["schemaVersion", "dashboard"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"/schemas/{FILE_NAME}",
        "title": "Tessera dashboard document, version 1",
        **root,
        "$defs": defs,
    }


def main() -> None:
    image = descriptor_pb2.FileDescriptorSet.FromString(Path(sys.argv[1]).read_bytes())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    (out / FILE_NAME).write_text(json.dumps(schema(image), indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
